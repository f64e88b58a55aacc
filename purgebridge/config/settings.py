"""All settings, their defaults, and where they come from -- in one place.

Precedence, later wins:

1. defaults (the ``VARIABLES`` table below)
2. a ``.env`` file (python-dotenv; it never overrides a variable that is
   already set in the real environment)
3. the process environment
4. CLI flags / ``overrides`` passed to :func:`load_settings`

Every value is checked here; a bad one raises :class:`ConfigError` naming the
variable, the value and what was expected, which the CLI prints as one line
before exiting with status 2.
"""

from dataclasses import dataclass, field, replace
import json
import os
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from dotenv import dotenv_values, find_dotenv

from purgebridge.core.errors import ConfigError
from purgebridge.core.nodes import Node, parse_node

Parser = Callable[[str, str], Any]  # (variable name, raw text) -> value, or ConfigError naming the variable


_GROUP = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


MAX_SECONDS = 1e8  # about three years: larger "seconds" are a typo, and inf overflows socket timeouts


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, raw, "expected a number of seconds, e.g. 2 or 0.5") from None
    if not 0 < value <= MAX_SECONDS:  # also refuses nan and inf
        raise ConfigError(name, raw, f"expected a number greater than 0 and at most {MAX_SECONDS:g}")
    return value


def _float_range(lo: float, hi: float, what: str) -> Parser:
    """A parser for a number from ``lo`` to ``hi``; ``what`` names it in the error ("a number of seconds")."""
    def parse(name: str, raw: str) -> float:
        value: Optional[float]
        try:
            value = float(raw)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise ConfigError(name, raw, f"expected {what} from {lo:g} to {hi:g}")
        return value
    return parse


def _int_range(lo: int, hi: int) -> Parser:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, raw, f"expected a whole number from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise ConfigError(name, raw, f"expected a whole number from {lo} to {hi}")
        return value
    return parse


def _string(name: str, raw: str) -> str:
    return raw.strip()


def _bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(name, raw, "expected true/false (1/0, yes/no, on/off)")


def _listen(name: str, raw: str) -> Tuple[str, int]:
    try:
        node = parse_node(raw, default_port=8787)
    except ValueError as exc:
        raise ConfigError(name, raw, f"expected host:port ({exc})") from None
    return node.host, node.port


def _csv(name: str, raw: str) -> Tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


# name -> (settings attribute, parser, default as text, one-line description).
# docs/configuration.md documents the same table; keep them in step.
VARIABLES: Dict[str, Tuple[str, Parser, str, str]] = {
    "PURGEBRIDGE_NODES": ("nodes_text", _string, "", "comma-separated Varnish nodes: host:port, http://host:port, [v6]:port"),
    "PURGEBRIDGE_VCL": ("vcl", _string, "", "VCL file whose acl block lists the nodes"),
    "PURGEBRIDGE_NODES_FILE": ("nodes_file", _string, "", "JSON file of node groups, e.g. per data centre: {\"groups\": {\"fra\": [\"host:port\", ...]}}"),
    "PURGEBRIDGE_ACL": ("acl", _string, "purge", "name of the acl in PURGEBRIDGE_VCL"),
    "PURGEBRIDGE_NODE_PORT": ("node_port", _int_range(1, 65535), "6081", "port for nodes given without one (VCL acl entries, bare hosts)"),
    "PURGEBRIDGE_TIMEOUT": ("timeout", _positive_float, "2", "seconds to connect to, and to wait for an answer from, a node"),
    "PURGEBRIDGE_RETRIES": ("retries", _int_range(0, 20), "3", "extra tries for a failed purge (timeout, reset, 5xx)"),
    "PURGEBRIDGE_BACKOFF": ("backoff", _positive_float, "0.1", "first retry delay in seconds; doubles each try, with jitter"),
    "PURGEBRIDGE_BACKOFF_MAX": ("backoff_max", _positive_float, "5", "longest retry delay in seconds"),
    "PURGEBRIDGE_PIPELINE": ("pipeline", _int_range(1, 1024), "64", "requests in flight on one connection (HTTP/1.1 pipelining)"),
    "PURGEBRIDGE_CONNECTIONS": ("connections", _int_range(1, 64), "2", "connections per node"),
    "PURGEBRIDGE_PROTO_HEADER": ("proto_header", _string, "X-Forwarded-Proto", "header that carries the URL's scheme so http and https variants can be purged; empty to omit"),
    # Relay service (purgebridge serve)
    "PURGEBRIDGE_LISTEN": ("listen", _listen, "127.0.0.1:8787", "address purgebridge serve listens on"),
    "PURGEBRIDGE_SECRET": ("secret", _string, "", "HMAC secret shared with the WordPress plugin"),
    "PURGEBRIDGE_SITES": ("sites", _csv, "", "comma-separated hosts (host or host:port) this relay may purge"),
    "PURGEBRIDGE_SITES_FILE": ("sites_file", _string, "", "JSON file with per-site secrets and mapping options"),
    "PURGEBRIDGE_WEBHOOK_TOKEN": ("webhook_token", _string, "", "bearer token for POST /v1/webhook"),
    "PURGEBRIDGE_PURGE_ALLOW": ("purge_allow", _csv, "", "addresses or networks (CIDR) allowed to send PURGE/BAN to the relay's front door, as to a Varnish node; empty: the front door refuses every sender (docs/cms/purge.md)"),
    "PURGEBRIDGE_ADMIN_TOKEN": ("admin_token", _string, "", "bearer token for POST /v1/purge and the admin routes"),
    "PURGEBRIDGE_BODY_TIMEOUT": ("body_timeout", _float_range(0.1, 300, "a number of seconds"), "10", "seconds a client has to send a whole request body; slower ones get 408 (docs/security.md)"),
    "PURGEBRIDGE_WEBHOOK_PURGE_ALL": ("webhook_purge_all", _bool, "false", "let the webhook token ban a whole site (purge_all); off: only the admin token can"),
    "PURGEBRIDGE_QUEUE": ("queue", _string, "purgebridge-queue.sqlite3", "the queue: a SQLite file path, redis://host:port/db, or redis+sentinel://h1:26379,h2:26379,h3:26379/service/db for several relays (docs/scaling.md)"),
    "PURGEBRIDGE_MAX_AGE": ("max_age", _positive_float, "86400", "seconds after which an undelivered purge is dead-lettered"),
    "PURGEBRIDGE_DEAD_LETTER_BAN": ("dead_letter_ban", _bool, "true", "when a node's purges are dead-lettered for age, queue a ban of every site for that node, so it comes back clean"),
    "PURGEBRIDGE_INSECURE": ("insecure", _bool, "false", "allow serve without a secret (local play only)"),
    "PURGEBRIDGE_LOG_FORMAT": ("log_format", _string, "json", "json or text"),
    "PURGEBRIDGE_PAGINATION": ("pagination", _int_range(0, 50), "3", "how many archive pages (/page/N/) to purge"),
    "PURGEBRIDGE_BATCH_GAP": ("batch_gap", _float_range(0, 1, "a number of seconds"), "0.015", "shortest time between two purges of one URL to one node: a URL not purged within it goes at once, a hot one waits (merging every update) and goes once the window has passed, so a trailing purge always follows its last update; 0 = send every update"),
    # Cache audit (purgebridge audit, and the relay's continuous sampler; docs/audit.md)
    "PURGEBRIDGE_ORIGIN": ("origin", _string, "", "the origin (host:port) audit fetches pages from, bypassing every cache; empty = the first backend of PURGEBRIDGE_VCL"),
    "PURGEBRIDGE_AUDIT_RATE": ("audit_rate", _float_range(0.1, 1000, "a number of URLs per second"), "10", "URLs audit checks per second at most (each one origin request plus one per node)"),
    "PURGEBRIDGE_AUDIT_IGNORE_FILE": ("audit_ignore_file", _string, "", "file of extra regular expressions (one a line) whose matches audit ignores when comparing pages"),
    "PURGEBRIDGE_AUDIT_SAMPLE": ("audit_sample", _int_range(0, 600), "0", "relay: URLs per minute per site the continuous audit checks; 0 = off"),
}

SECRET_VARIABLES = frozenset({"PURGEBRIDGE_SECRET", "PURGEBRIDGE_WEBHOOK_TOKEN", "PURGEBRIDGE_ADMIN_TOKEN"})


@dataclass(frozen=True)
class Settings:
    """The resolved configuration. Build it with :func:`load_settings`."""

    nodes: Tuple[Node, ...] = ()
    nodes_text: str = ""
    nodes_file: str = ""
    vcl: str = ""
    acl: str = "purge"
    node_port: int = 6081
    timeout: float = 2.0
    retries: int = 3
    backoff: float = 0.1
    backoff_max: float = 5.0
    pipeline: int = 64
    connections: int = 2
    proto_header: str = "X-Forwarded-Proto"
    listen: Tuple[str, int] = ("127.0.0.1", 8787)
    secret: str = field(default="", repr=False)
    sites: Tuple[str, ...] = ()
    sites_file: str = ""
    webhook_token: str = field(default="", repr=False)
    admin_token: str = field(default="", repr=False)
    purge_allow: Tuple[str, ...] = ()
    webhook_purge_all: bool = False
    body_timeout: float = 10.0
    queue: str = "purgebridge-queue.sqlite3"
    max_age: float = 86400.0
    dead_letter_ban: bool = True
    insecure: bool = False
    log_format: str = "json"
    pagination: int = 3
    batch_gap: float = 0.015
    origin: str = ""
    audit_rate: float = 10.0
    audit_ignore_file: str = ""
    audit_sample: int = 0
    sources: Dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # variable -> where it came from

    def replace(self, **changes: Any) -> "Settings":
        return replace(self, **changes)


def _raw_values(environ: Mapping[str, str], dotenv_path: Optional[str]) -> Dict[str, Tuple[str, str]]:
    """Merge defaults, .env and environment: name -> (text, source)."""
    values = {name: (spec[2], "default") for name, spec in VARIABLES.items()}
    path = dotenv_path if dotenv_path is not None else find_dotenv(usecwd=True)
    if path and os.path.isfile(path):
        for name, value in dotenv_values(path).items():
            if name in VARIABLES and value is not None and name not in environ:
                values[name] = (value, f".env ({path})")
    for name in VARIABLES:
        if name in environ:
            values[name] = (environ[name], "environment")
    return values


def nodes_from_file(path: str, node_port: int) -> List[Node]:
    """Nodes of a groups file: ``{"groups": {"fra": ["127.0.0.11:6081", ...], ...}}``."""
    name = "PURGEBRIDGE_NODES_FILE"
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ConfigError(name, path, f"cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(name, path, f"not valid JSON ({exc})") from None
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, dict) or not groups:
        raise ConfigError(name, path, 'expected {"groups": {"NAME": ["host:port", ...]}}')
    found: List[Node] = []
    for group, entries in groups.items():
        if not _GROUP.match(group):
            raise ConfigError(name, path, f"group name {group!r}: use letters, digits, '-' and '_'")
        if not isinstance(entries, list) or not entries:
            raise ConfigError(name, path, f"group {group!r}: expected a non-empty list of nodes")
        for entry in entries:
            try:
                node = parse_node(str(entry), node_port)
            except ValueError as exc:
                raise ConfigError(name, path, f"group {group!r}: {exc}") from None
            found.append(Node(node.host, node.port, group))
    return found


def resolve_nodes(nodes_text: str, vcl: str, acl: str, node_port: int, nodes_file: str = "") -> Tuple[Node, ...]:
    """Union of PURGEBRIDGE_NODES, the VCL acl and the groups file, in order, duplicates removed.

    A node listed twice keeps the first position and takes the group the
    groups file gives it.
    """
    found: List[Node] = []
    for entry in (nodes_text or "").split(","):
        if not entry.strip():
            continue
        try:
            found.append(parse_node(entry, node_port))
        except ValueError as exc:
            raise ConfigError("PURGEBRIDGE_NODES", nodes_text, str(exc)) from None
    if vcl:
        from purgebridge.config.vcl_acl import nodes_from_vcl  # only needed when configured

        if not os.path.isfile(vcl):
            raise ConfigError("PURGEBRIDGE_VCL", vcl, "file not found")
        found.extend(nodes_from_vcl(vcl, acl_name=acl, port=node_port))
    if nodes_file:
        found.extend(nodes_from_file(nodes_file, node_port))
    unique: Dict[Node, Node] = {}
    for node in found:
        if node not in unique or (node.group and not unique[node].group):
            unique[node] = node
    return tuple(unique.values())


def select_group(nodes: Iterable[Node], group: str) -> Tuple[Node, ...]:
    """The nodes of one group; ConfigError naming the known groups if none match."""
    chosen = tuple(n for n in nodes if n.group == group)
    if not chosen:
        known = sorted({n.group for n in nodes if n.group})
        raise ConfigError("--group", group, f"no node in that group (groups: {', '.join(known) or 'none'})")
    return chosen


def load_settings(overrides: Optional[Mapping[str, Any]] = None, environ: Optional[Mapping[str, str]] = None,
                  dotenv_path: Optional[str] = None, require_nodes: bool = False) -> Settings:
    """Build :class:`Settings` from every source in precedence order.

    ``overrides`` maps variable names (``PURGEBRIDGE_TIMEOUT``) to text values,
    as CLI flags give them; ``None`` values are ignored. ``environ`` defaults to
    ``os.environ``; tests pass a dict so they never depend on the caller's shell.
    """
    environ = os.environ if environ is None else environ
    raw = _raw_values(environ, dotenv_path)
    for name, value in (overrides or {}).items():
        if name not in VARIABLES:
            raise KeyError(f"unknown setting {name}")
        if value is not None:
            raw[name] = (str(value), "command line")
    kwargs: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    for name, (attr, parser, _default, _doc) in VARIABLES.items():
        text, source = raw[name]
        kwargs[attr] = parser(name, text)
        sources[name] = source
    if kwargs["log_format"] not in ("json", "text"):
        raise ConfigError("PURGEBRIDGE_LOG_FORMAT", kwargs["log_format"], "expected json or text")
    if kwargs["backoff_max"] < kwargs["backoff"]:
        raise ConfigError("PURGEBRIDGE_BACKOFF_MAX", raw["PURGEBRIDGE_BACKOFF_MAX"][0],
                          "must not be smaller than PURGEBRIDGE_BACKOFF")
    kwargs["nodes"] = resolve_nodes(kwargs["nodes_text"], kwargs["vcl"], kwargs["acl"], kwargs["node_port"],
                                    kwargs["nodes_file"])
    if require_nodes and not kwargs["nodes"]:
        raise ConfigError("PURGEBRIDGE_NODES", raw["PURGEBRIDGE_NODES"][0],
                          "no Varnish nodes configured: set PURGEBRIDGE_NODES, PURGEBRIDGE_VCL or "
                          "PURGEBRIDGE_NODES_FILE (or --node)")
    return Settings(sources=sources, **kwargs)


def describe(settings: Settings) -> Dict[str, Any]:
    """Settings as a dict fit for logs and `--json`: secrets shown only as set/unset."""
    out: Dict[str, Any] = {}
    for name, (attr, *_rest) in VARIABLES.items():
        value = getattr(settings, attr)
        out[name] = ("(set)" if value else "(unset)") if name in SECRET_VARIABLES else value
    out["nodes"] = [n.name for n in settings.nodes]
    return out


MIN_SECRET_LENGTH = 16  # characters: 16 random characters are beyond guessing; "change-me" is not
MIN_SECRET_DISTINCT = 6  # different characters: "aaaaaaaaaaaaaaaa" is long and no secret; 16 random hex digits
# have fewer than 6 different ones with odds of about 1 in 30,000, 32 of them practically never


def check_credentials(settings: Settings, sites: Iterable[Any]) -> None:
    """Refuse weak credentials before serving: too short, or one value used for two purposes.

    The secret signs events for every site that has none of its own, the
    webhook token purges pages, the admin token bans whole sites and reads
    status: a shared value would let the weakest holder act as the strongest,
    so each must differ from the others (per-site secrets included). An
    empty token only disables its route, so it is allowed.
    """
    named = [("PURGEBRIDGE_SECRET", settings.secret), ("PURGEBRIDGE_WEBHOOK_TOKEN", settings.webhook_token),
             ("PURGEBRIDGE_ADMIN_TOKEN", settings.admin_token)]
    named += [(f"PURGEBRIDGE_SITES_FILE (secret of {site.host})", site.secret) for site in sites if site.secret]
    for site in sites:
        cms = getattr(site, "cms", None)
        if cms is not None and cms.ghost is not None:
            named.append((f"PURGEBRIDGE_SITES_FILE (cms.ghost.secret of {site.host})", cms.ghost.secret))
        if cms is not None and cms.templates is not None:
            named.append((f"PURGEBRIDGE_SITES_FILE (cms.templates.token of {site.host})", cms.templates.token))
    first_use: Dict[str, str] = {}
    for name, value in named:
        if not value:
            continue
        if len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(name, "(hidden)", f"too short: use at least {MIN_SECRET_LENGTH} random characters "
                                                "(e.g. python3 -c 'import secrets; print(secrets.token_hex(16))')")
        if len(set(value)) < MIN_SECRET_DISTINCT:
            raise ConfigError(name, "(hidden)", f"too predictable: fewer than {MIN_SECRET_DISTINCT} different "
                                                "characters; use random ones (e.g. python3 -c 'import secrets; "
                                                "print(secrets.token_hex(16))')")
        if value in first_use and first_use[value] != name:
            raise ConfigError(name, "(hidden)", f"same value as {first_use[value]}: each secret and token must "
                                                "differ, so the holder of one cannot act as another")
        first_use.setdefault(value, name)

