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

from purgebridge.errors import SignatureError

PREFIX = "sha256="
WINDOW = 300  # seconds of allowed clock skew, and how long signatures are remembered
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^sha256=[0-9a-f]{64}$")


def _bytes(value):
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def sign(secret, timestamp, body):
    """Return the header value ``sha256=<hex>`` for ``body`` sent at ``timestamp``."""
    message = _bytes(str(timestamp)) + b"." + _bytes(body)
    return PREFIX + hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def verify(secrets, timestamp, signature, body, now=None, window=WINDOW):
    """Check a request's signature; return the name of the secret that matched.

    ``secrets`` maps a name (``"*"`` for the global secret, or a site host for a
    per-site secret) to the secret text; empty secrets are never accepted.
    Every candidate is compared with :func:`hmac.compare_digest`, so the time
    taken does not tell which prefix of the signature was right.

    Raises :class:`SignatureError` when a header is missing or malformed, the
    timestamp is more than ``window`` seconds away from ``now``, or no secret
    produces the signature.
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
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > window:
        raise SignatureError(f"timestamp is more than {window} s away from the relay's clock")
    matched = None
    for name, secret in secrets.items():
        if not secret:
            continue
        # No early exit: every candidate costs the same whichever one matches.
        if hmac.compare_digest(sign(secret, timestamp, body), signature) and matched is None:
            matched = name
    if matched is None:
        raise SignatureError("signature does not match")
    return matched
