"""A Varnish node: where purges are sent. Parsing of ``host:port`` lives here."""

from dataclasses import dataclass, field
from functools import lru_cache
import ipaddress
import re
from typing import Union

__all__ = ["Node", "parse_node", "valid_host"]

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


@dataclass(frozen=True, order=True)
class Node:
    """One Varnish listener. ``name`` is what tables and logs show.

    ``group`` (e.g. a data centre, from PURGEBRIDGE_NODES_FILE) is a label for
    targeting; it is not part of the node's identity.
    """

    host: str
    port: int
    group: str = field(default="", compare=False)

    @property
    def netloc(self) -> str:
        """``host:port`` with IPv6 literals in brackets, as HTTP wants it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def name(self) -> str:
        return self.netloc

    def __str__(self) -> str:
        return self.netloc


@lru_cache(maxsize=4096)
def valid_host(host: str) -> bool:
    """True for an IP literal (v4 or v6, no brackets) or a DNS hostname."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))


def parse_node(text: str, default_port: Union[int, str]) -> Node:
    """Parse ``host``, ``host:port``, ``[v6]:port`` or ``http://host:port``.

    Raises ``ValueError`` with a message fit to follow the variable name.
    """
    raw = text.strip()
    if raw.startswith("http://"):
        raw = raw[len("http://"):].rstrip("/")
    elif "://" in raw:
        raise ValueError(f"node {text!r}: only http:// nodes are supported (Varnish speaks plain HTTP)")
    if not raw:
        raise ValueError("empty node entry")
    port: Union[int, str] = default_port
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise ValueError(f"node {text!r}: missing ']' after IPv6 address")
        host, rest = raw[1:end], raw[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"node {text!r}: expected ':port' after ']'")
            port = rest[1:]
    elif raw.count(":") == 1:
        host, port = raw.split(":")
    elif raw.count(":") > 1:
        host = raw  # bare IPv6 without port
    else:
        host = raw
    try:
        number = int(port)
    except (TypeError, ValueError):
        raise ValueError(f"node {text!r}: port must be a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"node {text!r}: port must be 1-65535")
    if not valid_host(host):
        raise ValueError(f"node {text!r}: {host!r} is not an IP address or hostname")
    if ":" in host:
        host = str(ipaddress.ip_address(host))
    return Node(host=host, port=number)
