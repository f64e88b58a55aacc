"""What a purge is: the invalidation model every layer shares, and how it is written on the wire.

Why a module of its own: the queue stores invalidations, the worker sends
them and the routes build them; none of those should have to import another
one's layer to agree on what a purge is, what makes two of them the same
(``key``: they merge while waiting) and which bytes a node receives.
"""

from dataclasses import dataclass
from functools import cached_property
import re
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple

__all__ = ["USER_AGENT", "MAX_KEY_HEADER", "MAX_LINE", "MAX_KEY_LENGTH", "KEY_PATTERN", "KEY_RULE", "Header",
           "Invalidation", "is_surrogate_key", "encode_request", "invalidation_key", "key_of", "purge_for_url",
           "ban_for", "purge_all_for", "keys_for"]

Header = Tuple[str, str]  # (name, value) of a request header

from purgebridge.core.errors import InvalidURL
from purgebridge.core.urls import check_ban_regex, host_header as _host_header, split_url

USER_AGENT = "purgebridge"
MAX_KEY_HEADER = 7500  # bytes of one xkey-purge header; Varnish's default limit is 8k
MAX_LINE = 8000  # bytes of a request or header line; Varnish's http_req_hdr_len is 8 KiB by default
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")

# The surrogate-key rule, the one source for the request models, the mapping and ``keys_for``: a
# token xkey never splits (it splits on spaces and commas) and a header line can carry. ``$(?!\n)``
# because Python's ``$`` also matches before a final newline; the pattern is also published in the
# OpenAPI schema, where the lookahead means the same.
MAX_KEY_LENGTH = 200
KEY_PATTERN = r"^[A-Za-z0-9._:/-]{1,%d}$(?!\n)" % MAX_KEY_LENGTH
KEY_RULE = f"1-{MAX_KEY_LENGTH} characters from A-Z a-z 0-9 . _ : / -"
_KEY = re.compile(KEY_PATTERN)


def is_surrogate_key(key: object) -> bool:
    """Whether ``key`` is a surrogate key a node can be asked to purge (:data:`KEY_RULE`)."""
    return isinstance(key, str) and _KEY.match(key) is not None


def encode_request(method: str, target: str, host: str, headers: Iterable[Header] = ()) -> bytes:
    """Serialise a body-less request. Values were validated by ``urls``.

    Raises ValueError (UnicodeError for a character outside Latin-1) for a
    request no Varnish could ever take -- a control character or a line over
    ``MAX_LINE`` bytes -- so a row stored by an older version fails alone and
    at once instead of resetting the connection on every try.
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {USER_AGENT}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    # One search over all lines (joined without separators, so it finds exactly what a search per line
    # finds): a bulk purge encodes tens of thousands of requests before the first byte leaves.
    if max(map(len, lines)) > MAX_LINE or _CONTROL.search("".join(lines)):
        for line in lines:
            if len(line) > MAX_LINE or _CONTROL.search(line):
                raise ValueError(f"a request line over {MAX_LINE} bytes or with a control character: {line[:60]!r}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def invalidation_key(method: str, host: str, target: str, headers: Iterable[Sequence[str]] = ()) -> str:
    """Identity of a request: two equal keys purge the same thing (and merge while waiting)."""
    extra = "".join(f"\n{n}:{v}" for n, v in headers)
    return f"{method} {host}{target}{extra}"


def key_of(item: Mapping[str, Any]) -> str:
    """The key of an invalidation stored as a dict (``Invalidation.to_dict``), without building one."""
    return invalidation_key(item["method"], item["host"], item["target"], item.get("headers", ()))


@dataclass(frozen=True)
class Invalidation:
    """One request to send to a node; ``label`` is what reports show."""

    method: str
    target: str
    host: str
    headers: Tuple[Header, ...] = ()
    label: str = ""

    # Both cached: one invalidation goes to every node, and is merged by key
    # several times on its way there.
    @cached_property
    def key(self) -> str:
        """Identity of the request: two equal keys purge the same thing."""
        return invalidation_key(self.method, self.host, self.target, self.headers)

    @cached_property
    def wire(self) -> bytes:
        return encode_request(self.method, self.target, self.host, self.headers)

    def encode(self) -> bytes:
        return self.wire

    def to_dict(self) -> Dict[str, Any]:
        return {"method": self.method, "target": self.target, "host": self.host,
                "headers": [list(h) for h in self.headers], "label": self.label}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Invalidation":
        return cls(data["method"], data["target"], data["host"],
                   tuple(tuple(h) for h in data.get("headers", ())), data.get("label", ""))


def purge_for_url(url: str, proto_header: str = "X-Forwarded-Proto") -> Invalidation:
    """PURGE for one URL; raises InvalidURL before anything is sent."""
    scheme, host, target = split_url(url)
    headers = ((proto_header, scheme),) if proto_header else ()
    return Invalidation("PURGE", target, host, headers, url)


def ban_for(host: str, regex: str) -> Invalidation:
    """BAN of every object on ``host`` whose path+query matches ``regex`` (checked by ``urls.check_ban_regex``)."""
    regex = check_ban_regex(regex)
    host = _host_header(host)
    return Invalidation("BAN", "/", host, (("X-Ban-Url", regex),), f"ban {host} {regex}")


def purge_all_for(host: str) -> Invalidation:
    """A ban of everything cached for ``host``."""
    return ban_for(host, ".")


def keys_for(host: str, keys: Iterable[str], soft: bool = False) -> List[Invalidation]:
    """PURGEKEYS requests for surrogate keys, chunked under MAX_KEY_HEADER bytes."""
    host = _host_header(host)
    header = "xkey-softpurge" if soft else "xkey-purge"
    chunks: List[List[str]] = []
    current: List[str] = []
    for key in dict.fromkeys(keys):
        if not is_surrogate_key(key):
            raise InvalidURL(key, f"surrogate keys are {KEY_RULE}")
        if current and len(" ".join(current + [key])) > MAX_KEY_HEADER:
            chunks.append(current)
            current = []
        current.append(key)
    if current:
        chunks.append(current)
    return [Invalidation("PURGEKEYS", "/", host, ((header, " ".join(c)),), f"keys {' '.join(c)}")
            for c in chunks]
