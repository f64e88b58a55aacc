"""HMAC signatures on WordPress events (see docs/events.md).

The plugin signs ``timestamp + "." + raw body`` with HMAC-SHA256 and sends the
hex digest as ``X-Purgebridge-Signature: sha256=<hex>``. Signing the exact
bytes (not a re-serialised JSON) means both sides never disagree about key
order or whitespace; putting the timestamp inside the MAC means an attacker
cannot replay an old body with a fresh timestamp. Replays inside the window
are caught by the queue's signature cache, not here, because that cache must
be durable and shared with the enqueue transaction.
"""

import hashlib
import hmac
import re
import time
from typing import Optional, Tuple, Union

__all__ = ["PREFIX", "WINDOW", "MAX_AGE", "MAX_AHEAD", "sign", "check_headers", "verify"]

from purgebridge.core.errors import SignatureError

PREFIX = "sha256="
# A signature is remembered by the replay cache for WINDOW seconds from its arrival
# (queue.REPLAY_WINDOW); a timestamp passes from MAX_AHEAD seconds before it until
# MAX_AGE seconds after it. As long as MAX_AGE + MAX_AHEAD <= WINDOW, every time a
# signature could pass again lies inside the WINDOW after its first arrival, so a replay
# always meets the cache (a timestamp 200 s ahead used to pass again once forgotten).
WINDOW = 300
MAX_AGE = 240  # seconds a timestamp may lie in the past (clock skew plus the plugin's retries)
MAX_AHEAD = 60  # seconds a timestamp may lie in the future (clock skew only)
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^sha256=[0-9a-f]{64}$")


def _bytes(value: Union[str, bytes]) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def sign(secret: str, timestamp: Union[int, str], body: Union[str, bytes]) -> str:
    """Return the header value ``sha256=<hex>`` for ``body`` sent at ``timestamp``."""
    message = _bytes(str(timestamp)) + b"." + _bytes(body)
    return PREFIX + hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def check_headers(timestamp: str, signature: str, now: Optional[float] = None) -> Tuple[str, str]:
    """Well-formed headers with a timestamp inside the window; returns them stripped (no HMAC yet).

    Raises :class:`SignatureError` when a header is missing or malformed, or
    the timestamp is more than ``MAX_AGE`` seconds old or ``MAX_AHEAD``
    seconds ahead of ``now``.
    """
    if not timestamp:
        raise SignatureError("missing X-Purgebridge-Timestamp header")
    if not signature:
        raise SignatureError("missing X-Purgebridge-Signature header")
    timestamp = timestamp.strip()
    signature = signature.strip().lower()
    if not _TIMESTAMP.match(timestamp):
        raise SignatureError("X-Purgebridge-Timestamp must be unix seconds")
    if not _SIGNATURE.match(signature):
        raise SignatureError("X-Purgebridge-Signature must be sha256=<64 hex digits>")
    age = (time.time() if now is None else now) - int(timestamp)
    if age > MAX_AGE:
        raise SignatureError(f"timestamp is more than {MAX_AGE} s old by the relay's clock")
    if age < -MAX_AHEAD:
        raise SignatureError(f"timestamp is more than {MAX_AHEAD} s ahead of the relay's clock")
    return timestamp, signature


def verify(secret: str, timestamp: str, signature: str, body: Union[str, bytes], now: Optional[float] = None) -> None:
    """Check a request's signature against the one secret of the site it claims.

    One HMAC per request, whatever the number of configured secrets: the
    caller picks the secret from the claimed site (``Sites.secret_for``). The
    comparison is :func:`hmac.compare_digest`, so the time taken does not tell
    which prefix of the signature was right. An empty secret never verifies.
    Raises :class:`SignatureError` as :func:`check_headers` does, or when the
    signature does not match.
    """
    timestamp, signature = check_headers(timestamp, signature, now)
    if not secret:
        raise SignatureError("no secret is configured for this site")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise SignatureError("signature does not match")
