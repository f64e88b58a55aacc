"""URL checks and the (Host, request-target) split that every PURGE needs.

A purge is addressed by ``Host`` + request-target, not by the URL the browser
saw: Varnish hashes on ``req.url`` (path and query) and ``Host``. Anything that
could smuggle a second request or header onto a pipelined connection (CR, LF,
spaces, control characters) is refused here, before any byte is sent.
"""

from functools import lru_cache
import re
from typing import Tuple
from urllib.parse import quote, urlsplit

from purgebridge.core.errors import InvalidURL
from purgebridge.core.nodes import valid_host

__all__ = ["DEFAULT_PORTS", "MAX_TARGET_BYTES", "MAX_URL_LENGTH", "MAX_BAN_LENGTH", "split_url", "host_header",
           "check_ban_regex", "site_of"]

DEFAULT_PORTS = {"http": 80, "https": 443}
# Varnish reads a request line or header line of at most http_req_hdr_len (8 KiB by default) and
# resets the connection on a longer one, on every try: such a purge could never be delivered.
MAX_TARGET_BYTES = 7 * 1024  # request-target once percent-encoded, leaving room for method and Host
MAX_URL_LENGTH = 8192  # characters of a URL as given (checked before the encoded length)
# Characters left alone when percent-encoding a non-ASCII path: the reserved
# set plus '%' so already-encoded sequences survive.
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = _SAFE_PATH + "?"


MAX_BAN_LENGTH = 4096  # characters of a ban regex: one header line, well under Varnish's 8 KiB
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]+$")
# C0 and C1 controls, space, DEL, and lone surrogates (which no encoding can send).
_UNSAFE = re.compile("[\x00-\x20\x7f-\x9f\ud800-\udfff]")
_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^\[\]:/?#@\\]+))(?::(?P<port>[0-9]{1,5}))?$")


def _check_characters(url: str) -> None:
    if "\r" in url or "\n" in url:
        raise InvalidURL(url, "contains CR or LF")
    if _UNSAFE.search(url):
        raise InvalidURL(url, "contains whitespace or a control character")


@lru_cache(maxsize=16384)
def split_url(url: str) -> Tuple[str, str, str]:
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
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(url[:80] + "...", f"longer than {MAX_URL_LENGTH} characters")
    plain = _PLAIN_URL.fullmatch(url)
    if plain and valid_host(plain[2]) and len(plain[3] or "/") <= MAX_TARGET_BYTES:
        return plain[1], plain[2], plain[3] or "/"
    return _split_general(url)


# The common shape -- lower-case http(s), a lower-case DNS name or IPv4 address, no port, user, query or
# fragment, a path of characters percent-encoding leaves as they are -- has the same answer without
# urlsplit and quote, in a fifth of the time: ``purgebridge purge -`` checks tens of thousands of such
# URLs before it sends anything (tests/unit/test_urls.py checks both ways agree).
_PLAIN_URL = re.compile(r"(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(/[A-Za-z0-9/%:@!$&'()*+,;=._~-]*)?")


def _split_general(url: str) -> Tuple[str, str, str]:
    """``split_url`` for any URL: urlsplit, IDNA, ports, percent-encoding."""
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
    host = (parts.hostname or "").lower().rstrip(".")  # "example.test." is the same site (vcl/ strips it too)
    if not host:
        raise InvalidURL(url, "has no host")
    host = _ascii_host(url, host)
    if not valid_host(host):
        raise InvalidURL(url, f"host {host!r} is not a hostname or IP address")
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port in (None, DEFAULT_PORTS[scheme]) else f"{bracketed}:{port}"
    target = quote(parts.path or "/", safe=_SAFE_PATH)
    if parts.query:
        target += "?" + quote(parts.query, safe=_SAFE_QUERY)
    if len(target) > MAX_TARGET_BYTES:
        raise InvalidURL(url[:80] + "...", f"path and query are longer than {MAX_TARGET_BYTES} bytes once "
                         "percent-encoded (Varnish refuses such a request line)")
    return scheme, host_header, target


def _ascii_host(url: str, host: str) -> str:
    """The host as sent in ``Host``: IDNA for an international name; InvalidURL when it has none."""
    try:
        host.encode("ascii")
        return host
    except UnicodeEncodeError:
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidURL(url, f"host {host!r} is not a valid international domain name ({exc})") from None


def host_header(text: str) -> str:
    """``host`` or ``host:port`` (or ``[v6]:port``) -> the ``Host`` value, lower case; nothing else.

    Strict on purpose: ``evil/..`` or ``a.test/x?y`` is refused, not cut down
    to a host, so a ban or key purge never lands on a site nobody named.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidURL(text, "empty host")
    _check_characters(text)
    match = _HOST_PORT.match(text.strip())
    if not match:
        raise InvalidURL(text, "not a valid host (expected host or host:port)")
    host = match.group("v6") or _ascii_host(text, match.group("name").lower().rstrip("."))
    if not valid_host(host) or (match.group("port") and not 0 < int(match.group("port")) < 65536):
        raise InvalidURL(text, "not a valid host (expected host or host:port)")
    return split_url(f"http://{'[' + host + ']' if match.group('v6') else host}"
                     f"{':' + match.group('port') if match.group('port') else ''}/")[1]


def check_ban_regex(regex: str) -> str:
    """A ban expression Varnish accepts in ``X-Ban-Url``: printable ASCII, bounded, a valid regex.

    Varnish's regex engine is PCRE2; Python's ``re`` accepts nearly the same
    syntax, so a regex that fails here would fail there too (the reverse is
    rarer and shows as a refused ban, not a poisoned queue).
    """
    if not isinstance(regex, str) or not regex:
        raise InvalidURL(regex, "empty ban expression")
    if len(regex) > MAX_BAN_LENGTH:
        raise InvalidURL(regex[:80] + "...", f"ban expression longer than {MAX_BAN_LENGTH} characters")
    if not _PRINTABLE_ASCII.match(regex):
        raise InvalidURL(regex, "ban expression must be printable ASCII (no control or non-ASCII characters)")
    try:
        re.compile(regex)
    except re.error as exc:
        raise InvalidURL(regex, f"not a regular expression ({exc})") from None
    return regex


def site_of(url: str) -> str:
    """``host[:port]`` of a URL, as used for the relay's allowed-sites check."""
    return split_url(url)[1]
