"""HMAC signing: the shared vector, and properties that must hold for any input."""

import json
from pathlib import Path

from hypothesis import given, settings as hsettings, strategies as st
import pytest

from purgebridge.core.errors import SignatureError
from purgebridge.core.signing import MAX_AGE, MAX_AHEAD, WINDOW, sign, verify

VECTOR = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "signing.json").read_text())

bodies = st.binary(max_size=2048)
timestamps = st.integers(min_value=1_000_000_000, max_value=4_000_000_000)


def test_shared_vector():
    assert sign(VECTOR["secret"], VECTOR["timestamp"], VECTOR["body"]) == VECTOR["signature"]
    assert verify(VECTOR["secret"], VECTOR["timestamp"], VECTOR["signature"], VECTOR["body"].encode(),
                  now=int(VECTOR["timestamp"])) is None


def test_vector_with_other_secret_fails():
    with pytest.raises(SignatureError, match="does not match"):
        verify(VECTOR["secret"] + "x", VECTOR["timestamp"], VECTOR["signature"], VECTOR["body"].encode(),
               now=int(VECTOR["timestamp"]))


@given(secret=st.text(min_size=1, max_size=64), body=bodies, ts=timestamps)
def test_roundtrip(secret, body, ts):
    assert verify(secret, str(ts), sign(secret, ts, body), body, now=ts) is None


@given(secret=st.text(min_size=1, max_size=64), body=bodies, ts=timestamps,
       index=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_changed_body_byte_is_refused(secret, body, ts, index, flip):
    signature = sign(secret, ts, body)
    tampered = bytearray(body + b"x")
    position = index % len(tampered)
    tampered[position] ^= flip
    with pytest.raises(SignatureError):
        verify(secret, str(ts), signature, bytes(tampered), now=ts)


@given(secret=st.text(min_size=1, max_size=64), body=bodies, ts=timestamps, delta=st.integers(1, 10_000))
def test_timestamp_is_inside_the_mac(secret, body, ts, delta):
    """A valid signature moved to another timestamp no longer verifies."""
    signature = sign(secret, ts, body)
    with pytest.raises(SignatureError, match="does not match"):
        verify(secret, str(ts + delta), signature, body, now=ts + delta)


@given(secret=st.text(min_size=1, max_size=64), body=bodies, ts=timestamps,
       skew=st.integers(min_value=-2 * WINDOW, max_value=2 * WINDOW))
def test_skew_window(secret, body, ts, skew):
    """``skew`` is now minus the timestamp: up to MAX_AGE behind, MAX_AHEAD ahead."""
    signature = sign(secret, ts, body)
    if -MAX_AHEAD <= skew <= MAX_AGE:
        assert verify(secret, str(ts), signature, body, now=ts + skew) is None
    else:
        with pytest.raises(SignatureError, match="relay's clock"):
            verify(secret, str(ts), signature, body, now=ts + skew)


@given(ts=timestamps, first=st.integers(-2 * WINDOW, 2 * WINDOW), later=st.integers(WINDOW + 1, 10 * WINDOW))
def test_a_signature_never_passes_after_the_replay_cache_forgot_it(ts, first, later):
    """Issue 13.3: the cache keeps a signature WINDOW s from its first arrival; the timestamp must be dead by then."""
    body, secret = b"{}", "s3cret-s3cret-s3cret"
    signature = sign(secret, ts, body)
    try:
        verify(secret, str(ts), signature, body, now=ts + first)
    except SignatureError:
        return  # never accepted, nothing to replay
    with pytest.raises(SignatureError, match="relay's clock"):
        verify(secret, str(ts), signature, body, now=ts + first + later)


@hsettings(max_examples=200)
@given(header=st.text(max_size=80))
def test_malformed_signature_headers_are_refused(header):
    body, ts = b"{}", 1_764_153_600
    good = sign("s3cret", ts, body)
    if header.strip().lower() == good:
        return
    with pytest.raises(SignatureError):
        verify("s3cret", str(ts), header, body, now=ts)


@pytest.mark.parametrize("timestamp,signature,message", [
    ("", "sha256=" + "0" * 64, "missing X-Purgebridge-Timestamp"),
    ("1764153600", "", "missing X-Purgebridge-Signature"),
    ("-5", "sha256=" + "0" * 64, "unix seconds"),
    ("1764153600.5", "sha256=" + "0" * 64, "unix seconds"),
    ("1764153600", "md5=abc", "sha256=<64 hex digits>"),
])
def test_header_errors(timestamp, signature, message):
    with pytest.raises(SignatureError, match=message):
        verify("s", timestamp, signature, b"{}", now=1764153600)


def test_empty_secrets_never_verify():
    body, ts = b"{}", 1_764_153_600
    with pytest.raises(SignatureError):
        verify("", str(ts), sign("", ts, body), body, now=ts)
