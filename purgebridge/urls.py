"""URL checks and the (Host, request-target) split that every PURGE needs.

A purge is addressed by ``Host`` + request-target, not by the URL the browser
saw: Varnish hashes on ``req.url`` (path and query) and ``Host``. Anything that
could smuggle a second request or header onto a pipelined connection (CR, LF,
spaces, control characters) is refused here, before any byte is sent.
"""

from functools import lru_cache
import re
from urllib.parse import quote, urlsplit

from purgebridge.errors import InvalidURL
from purgebridge.node import valid_host

DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left alone when percent-encoding a non-ASCII path: the reserved
# set plus '%' so already-encoded sequences survive.
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = _SAFE_PATH + "?"


_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


def _check_characters(url):
    if "\r" in url or "\n" in url:
        raise InvalidURL(url, "contains CR or LF")
    if _UNSAFE.search(url):
        raise InvalidURL(url, "contains whitespace or a control character")


@lru_cache(maxsize=16384)
def split_url(url):
    """Return ``(scheme, host_header, target)`` for an absolute http(s) URL.

    ``host_header`` carries the port only when it is not the scheme's default
    (what browsers send, so what Varnish hashed). Non-ASCII characters in the
    path or query are percent-encoded (WordPress does the same for its slugs).
    Raises :class:`InvalidURL` naming the URL and the reason.

    Cached: the relay checks the same front page, feed and archive URLs for
    every event of a site, and the answer depends on the string alone. 16k
    entries hold about 7 MB (65k held 30 MB of mostly one-off permalinks).
    """
    if not isinstance(url, str) or not url:
        raise InvalidURL(url, "empty")
    _check_characters(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(url, f"cannot be parsed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidURL(url, "scheme must be http or https")
    if parts.username is not None or parts.password is not None:
        raise InvalidURL(url, "must not contain user:password@")
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidURL(url, "has no host")
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    if not valid_host(host):
        raise InvalidURL(url, f"host {host!r} is not a hostname or IP address")
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port in (None, DEFAULT_PORTS[scheme]) else f"{bracketed}:{port}"
    target = quote(parts.path or "/", safe=_SAFE_PATH)
    if parts.query:
        target += "?" + quote(parts.query, safe=_SAFE_QUERY)
    return scheme, host_header, target


def check_header_value(name, value):
    """Refuse header values that could break the request framing."""
    if any(c in value for c in "\r\n\0"):
        raise InvalidURL(value, f"{name} value contains CR, LF or NUL")
    return value


def site_of(url):
    """``host[:port]`` of a URL, as used for the relay's allowed-sites check."""
    return split_url(url)[1]
