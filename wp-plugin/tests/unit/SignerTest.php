<?php
/**
 * The signer against the shared test vector (tests/vectors/signing.json),
 * which the relay's Python tests check too.
 */

use PHPUnit\Framework\TestCase;

final class SignerTest extends TestCase {

	private static function vector() {
		$path = dirname( __DIR__, 3 ) . '/tests/vectors/signing.json';
		$data = json_decode( (string) file_get_contents( $path ), true );
		self::assertIsArray( $data, "cannot read $path" );
		return $data;
	}

	public function test_signature_matches_shared_vector() {
		$v = self::vector();
		$this->assertSame( $v['signature'], Purgebridge_Signer::sign( $v['secret'], $v['timestamp'], $v['body'] ) );
	}

	public function test_integer_timestamp_signs_the_same() {
		$v = self::vector();
		$this->assertSame( $v['signature'], Purgebridge_Signer::sign( $v['secret'], (int) $v['timestamp'], $v['body'] ) );
	}

	public function test_headers_carry_timestamp_and_signature() {
		$v       = self::vector();
		$headers = Purgebridge_Signer::headers( $v['secret'], (int) $v['timestamp'], $v['body'] );
		$this->assertSame( 'application/json', $headers['Content-Type'] );
		$this->assertSame( $v['timestamp'], $headers['X-Purgebridge-Timestamp'] );
		$this->assertSame( $v['signature'], $headers['X-Purgebridge-Signature'] );
	}

	public function test_any_change_changes_the_signature() {
		$v = self::vector();
		$this->assertNotSame( $v['signature'], Purgebridge_Signer::sign( $v['secret'] . 'x', $v['timestamp'], $v['body'] ) );
		$this->assertNotSame( $v['signature'], Purgebridge_Signer::sign( $v['secret'], (int) $v['timestamp'] + 1, $v['body'] ) );
		$this->assertNotSame( $v['signature'], Purgebridge_Signer::sign( $v['secret'], $v['timestamp'], $v['body'] . ' ' ) );
	}

	public function test_format_is_lowercase_hex() {
		$this->assertMatchesRegularExpression( '/^sha256=[0-9a-f]{64}$/', Purgebridge_Signer::sign( 's', 1, '{}' ) );
	}
}
