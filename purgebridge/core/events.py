"""Request bodies: one model per body that gives both the checks and the OpenAPI schemas.

Each body (a WordPress event, a webhook, an admin purge) is a set of
``msgspec.Struct`` classes. :func:`validate_wordpress_event`,
:func:`validate_webhook` and :func:`validate_purge` convert decoded JSON into
them, and ``openapi.py`` publishes ``msgspec.json.schema_components`` of the
very same classes, so the document and the checks cannot drift.

Why msgspec (not pydantic, not hand-written checks): its decoder is C, about
as fast as ``json`` alone, so the accept path pays nothing for a typed model;
it refuses by itself what made the old hand-written parser answer 500 (lone
surrogates, numbers out of range) and it reports the JSON path of the first
problem, which becomes the ``field`` of the 400. pydantic would do the same
with a larger dependency and a second schema dialect to map.

Every field that ends up in a request line, a header or a ban expression is
checked as what it becomes there: URLs by :func:`urls.split_url` (characters,
scheme, host, encoded length that Varnish accepts), path segments
(``rest_base``, ``taxonomy``, ``type``) by a pattern, surrogate keys by the
xkey alphabet, ban regexes as printable ASCII that compiles, hosts by
:func:`urls.host_header`. Unknown fields are ignored so that newer plugins can
send more than this relay knows about. The schemas are written down in
docs/events.md (WordPress events) and docs/webhook.md (webhook and admin
purge); the limits in docs/security.md.
"""

from dataclasses import dataclass
import re
from typing import Annotated, Any, ClassVar, Dict, List, Literal, Optional, Tuple, Type, TypeVar, Union

import msgspec
from msgspec import Meta

from purgebridge.core.errors import InvalidEvent, InvalidURL
from purgebridge.core.invalidation import KEY_PATTERN, KEY_RULE
from purgebridge.core.urls import MAX_BAN_LENGTH, MAX_URL_LENGTH, check_ban_regex, host_header, split_url

__all__ = ["MAX_CHANGES", "MAX_ITEMS", "MAX_TEXT", "MAX_ID", "MAX_KEEP_PATHS", "ACTIONS", "BODIES", "Event",
           "PostChange", "CommentChange", "TermChange", "SiteChange", "UrlsChange", "Change", "Post", "Term",
           "Author", "Webhook", "Purge", "Content", "PurgeRequest", "parse_json", "validate_wordpress_event",
           "validate_webhook", "validate_purge"]

S = TypeVar("S", bound=msgspec.Struct)

MAX_CHANGES = 500
MAX_ITEMS = 10_000  # urls or keys in one webhook / purge request
MAX_TEXT = 200  # free text such as a change's reason
MAX_ID = 2 ** 63 - 1  # WordPress ids are unsigned BIGINT; anything larger is not an id

ACTIONS = {
    "post": ("publish", "update", "unpublish", "trash", "delete"),
    "comment": ("approve", "unapprove", "spam", "trash", "edit", "new"),
    "term": ("create", "edit", "delete"),
    "site": ("purge_all", "ping"),  # ping: the plugin's "Send test event", purges nothing
    "urls": ("purge",),  # given URLs, archives and keys on the event's own site (admin bar, WP-CLI, public API)
}

_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# A WordPress post type, taxonomy or post status (sanitize_key: a-z 0-9 _ -), case kept for other CMSs.
_SLUG_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# A REST base becomes /wp-json/wp/v2/<rest_base>/<id>: segments of unreserved characters.
_REST_BASE_PATTERN = r"^[A-Za-z0-9_~-][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)*$"

# A site path of a WordPress network (``/blog2/``): what WordPress allows in a
# site's path, already percent-encoded; no regex can be smuggled into the ban
# the relay builds from it (mapping.site_ban).
_SITE_PATH_PATTERN = r"^/(?:[A-Za-z0-9._~%-]+/)*$"
MAX_KEEP_PATHS = 1000

# What a pattern means, for the 400's message.
_PATTERN_TEXT = {
    _SITE_PATH_PATTERN: "expected a site path such as /blog2/ (A-Z a-z 0-9 . _ ~ % - between slashes)",
    _DATE_PATTERN: "expected YYYY-MM-DD",
    KEY_PATTERN: f"expected {KEY_RULE}",
    _SLUG_PATTERN: "expected 1-64 characters from A-Z a-z 0-9 _ -",
    _REST_BASE_PATTERN: "expected path segments of A-Z a-z 0-9 . _ ~ - separated by /",
}

Id = Annotated[int, Meta(ge=0, le=MAX_ID)]
Url = Annotated[str, Meta(max_length=MAX_URL_LENGTH, extra_json_schema={
    "format": "uri", "description": "absolute http(s) URL; at most 7 KiB once percent-encoded"})]
Key = Annotated[str, Meta(pattern=KEY_PATTERN)]
Slug = Annotated[str, Meta(pattern=_SLUG_PATTERN)]
RestBase = Annotated[str, Meta(pattern=_REST_BASE_PATTERN, max_length=100)]
Date = Annotated[str, Meta(pattern=_DATE_PATTERN, extra_json_schema={"format": "date"})]
Text = Annotated[str, Meta(max_length=MAX_TEXT)]
Host = Annotated[str, Meta(max_length=300, description="host, host:port or site URL (scheme://host[:port]/)")]
Ban = Annotated[str, Meta(min_length=1, max_length=MAX_BAN_LENGTH, pattern=r"^[\x20-\x7e]+$",
                          description="regex on req.url (printable ASCII), sent as a BAN with X-Ban-Url")]
UrlList = Annotated[List[Url], Meta(max_length=MAX_ITEMS)]
KeyList = Annotated[List[Key], Meta(max_length=MAX_ITEMS)]
SitePath = Annotated[str, Meta(pattern=_SITE_PATH_PATTERN, max_length=200)]


class _Body(msgspec.Struct, omit_defaults=True):
    """Base: URL fields named in ``_urls`` are checked with :func:`urls.split_url` after the types."""

    _urls: ClassVar[Tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name in self._urls:
            value = getattr(self, name)
            for index, url in enumerate(value if isinstance(value, list) else [value]):
                if url is not None:
                    where = f"{name}[{index}]" if isinstance(value, list) else name
                    _check_url_or_raise(url, where)


def _check_url_or_raise(url: str, where: str) -> None:
    """Raise the ValueError msgspec turns into a ValidationError at this object (``@field: reason``)."""
    try:
        split_url(url)
    except InvalidURL as exc:
        raise ValueError(f"@{where}: invalid URL: {exc.reason}") from None


# --- WordPress events (docs/events.md) -------------------------------------

class Author(_Body):
    id: Optional[Id] = None
    url: Optional[Url] = None
    _urls: ClassVar[Tuple[str, ...]] = ("url",)


class Term(_Body):
    id: Id
    taxonomy: Slug
    rest_base: Optional[RestBase] = None
    url: Optional[Url] = None
    url_old: Optional[Url] = None
    _urls: ClassVar[Tuple[str, ...]] = ("url", "url_old")


class Post(_Body):
    id: Id
    type: Optional[Slug] = None
    rest_base: Optional[RestBase] = None
    status_old: Optional[Slug] = None
    status_new: Optional[Slug] = None
    url_old: Optional[Url] = None
    url_new: Optional[Url] = None
    type_archive_url: Optional[Url] = None
    date_old: Optional[Date] = None
    date_new: Optional[Date] = None
    author: Optional[Author] = None
    terms_old: Annotated[List[Term], Meta(max_length=MAX_ITEMS)] = []
    terms_new: Annotated[List[Term], Meta(max_length=MAX_ITEMS)] = []
    _urls: ClassVar[Tuple[str, ...]] = ("url_old", "url_new", "type_archive_url")


# The action fields: strings documented as enums, checked with a message naming the kind (``_Change``).
PostAction = Annotated[str, Meta(extra_json_schema={"enum": list(ACTIONS["post"])})]
CommentAction = Annotated[str, Meta(extra_json_schema={"enum": list(ACTIONS["comment"])})]
TermAction = Annotated[str, Meta(extra_json_schema={"enum": list(ACTIONS["term"])})]
SiteAction = Annotated[str, Meta(extra_json_schema={"enum": list(ACTIONS["site"])})]
UrlsAction = Annotated[str, Meta(extra_json_schema={"enum": list(ACTIONS["urls"])})]


class _Change(_Body, tag_field="kind"):
    action: str

    def __post_init__(self) -> None:
        kind = str(type(self).__struct_config__.tag)
        if self.action not in ACTIONS[kind]:
            raise ValueError(f"@action: for kind {kind} expected one of {', '.join(sorted(ACTIONS[kind]))}")
        super().__post_init__()


class PostChange(_Change, tag="post"):
    action: PostAction
    post: Post


class CommentChange(_Change, tag="comment"):
    action: CommentAction
    post: Post
    comment_id: Id


class TermChange(_Change, tag="term"):
    action: TermAction
    term: Term


class SiteChange(_Change, tag="site"):
    action: SiteAction
    reason: Optional[Text] = None
    # Multisite: the other sites' paths inside this site's, which a purge_all leaves cached.
    keep_paths: Optional[Annotated[List[SitePath], Meta(max_length=MAX_KEEP_PATHS)]] = None


class UrlsChange(_Change, tag="urls"):
    """Given targets on the event's own site: ``urls`` purged exactly ("Purge this page",
    "Purge URLs", ``wp purgebridge purge``, ``purgebridge_purge_urls``), ``archives`` with their
    pages and feed (an author's old archive), ``keys`` (``purgebridge_purge_keys``). Every URL
    must be on the event's own site (checked by :class:`Event`)."""

    action: UrlsAction
    urls: Annotated[UrlList, Meta(description="absolute URLs on the event's site (its host, under its home path)")] = []
    archives: Annotated[UrlList, Meta(description="archive URLs on the event's site, purged with their pages and feed")] = []
    keys: KeyList = []
    reason: Optional[Text] = None
    _urls: ClassVar[Tuple[str, ...]] = ("urls", "archives")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.urls or self.archives or self.keys):
            raise ValueError("@urls: expected at least one URL, archive or key")


Change = Union[PostChange, CommentChange, TermChange, SiteChange, UrlsChange]


class Event(_Body):
    """A signed batch from the WordPress plugin (docs/events.md, schema 1)."""

    schema: Literal[1]
    site: Annotated[Url, Meta(description="home_url('/')")]
    changes: Annotated[List[Change], Meta(min_length=1, max_length=MAX_CHANGES)]
    sent_at: Optional[Id] = None
    batch_id: Optional[Annotated[str, Meta(max_length=64, description=(
        "random per batch: keeps two batches with the same changes signed in the same second from "
        "sharing a signature (the second would be refused as a replay)"))]] = None
    _urls: ClassVar[Tuple[str, ...]] = ("site",)

    def __post_init__(self) -> None:
        super().__post_init__()
        for index, change in enumerate(self.changes):
            if isinstance(change, UrlsChange):
                _on_site(change.urls, self.site, f"changes[{index}].urls")


def _on_site(urls: List[str], site: str, where: str) -> None:
    """Each URL on the site of ``site``: its host, under its home path -- a plugin can
    purge any page of its own site and nothing of another."""
    _scheme, site_host, site_target = split_url(site)
    home = site_target.split("?", 1)[0]
    home = home if home.endswith("/") else home + "/"
    for index, url in enumerate(urls):
        _scheme, host, target = split_url(url)
        path = target.split("?", 1)[0]
        if host != site_host or not (path + "/").startswith(home):
            raise ValueError(f"@{where}[{index}]: not on the event's site {site_host}{home}")


# --- webhook and admin purge (docs/webhook.md) ------------------------------

class Content(_Body):
    """Mapped like a post: the URL, old URL, each collection with its pagination and feed, the keys."""

    url: Optional[Url] = None
    old_url: Optional[Url] = None
    collections: UrlList = []
    keys: KeyList = []
    _urls: ClassVar[Tuple[str, ...]] = ("url", "old_url", "collections")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.url or self.old_url or self.collections or self.keys):
            raise ValueError("expected at least one of url, old_url, collections, keys")


class _Purge(_Body):
    site: Optional[Host] = None
    urls: UrlList = []
    keys: KeyList = []
    purge_all: bool = False
    soft: Annotated[bool, Meta(description="xkey soft purge for keys")] = False
    _urls: ClassVar[Tuple[str, ...]] = ("urls",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.site is not None:
            try:
                host_header(self.site)
            except InvalidURL as exc:
                raise ValueError(f"@site: {exc.reason}") from None


class Webhook(_Purge):
    """URLs, keys or a content object from any CMS; at least one of urls, keys, content, purge_all."""

    content: Optional[Content] = None


class Purge(_Purge):
    """Admin purge; at least one of urls, keys, ban, purge_all; site is required with keys, ban or purge_all."""

    ban: Optional[Ban] = None
    wait: Annotated[bool, Meta(description="send now and answer with the per-node report")] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ban is not None:
            try:
                check_ban_regex(self.ban)
            except InvalidURL as exc:
                raise ValueError(f"@ban: {exc.reason}") from None


BODIES = (Event, Webhook, Purge)  # the models openapi.py publishes


# --- decoding and the 400's field ------------------------------------------

_DECODER = msgspec.json.Decoder()
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_TYPE_NAMES = {"int": "integer", "str": "string", "bool": "true or false", "array": "array", "object": "object"}


def parse_json(body: Union[bytes, str]) -> Dict[str, Any]:
    """Decode a UTF-8 JSON object; anything else is a 400 on the field ``body``.

    msgspec's decoder refuses invalid UTF-8, lone surrogates and numbers that
    fit no machine type; nesting deeper than the interpreter's recursion limit
    is refused here too (a 100,000-deep array used to be a 500).
    """
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    try:
        data = _DECODER.decode(raw)
    except msgspec.ValidationError as exc:  # a number out of range
        raise InvalidEvent("body", f"not valid JSON ({_split(str(exc))[1]})") from None
    except msgspec.DecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("body", "not UTF-8") from None
        reason = "a lone UTF-16 surrogate escape" if "\\ud" in raw.decode("utf-8").lower() else exc
        raise InvalidEvent("body", f"not valid JSON ({reason})") from None
    except RecursionError:
        raise InvalidEvent("body", "not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise InvalidEvent("body", "expected a JSON object")
    return data


def _split(text: str) -> Tuple[str, str]:
    match = _AT.match(text)
    assert match is not None  # every part of the pattern is optional
    return (match.group("path") or "").lstrip("."), match.group("message")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _readable(path: str, message: str) -> Tuple[str, str]:
    """msgspec's ``message - at `$.path``` -> (dotted field, a message saying what was expected)."""
    if message.startswith("@"):  # raised by a __post_init__ of the object at ``path``
        name, _, reason = message[1:].partition(": ")
        return _join(path, name), reason
    required = re.match(r"Object missing required field `([^`]+)`", message)
    if required:
        return _join(path, required.group(1)), "required"
    typed = re.match(r"Expected `([a-z]+)(?: \| null)?`, got `", message)
    if typed:
        return path, f"expected {_TYPE_NAMES.get(typed.group(1), typed.group(1))}"
    pattern = re.match(r"Expected `str` matching regex '(.*)'$", message, re.S)
    if pattern:
        return path, _PATTERN_TEXT.get(pattern.group(1), "has characters that are not allowed here")
    length = re.match(r"Expected `(array|str)` of length ([<>]=) ([0-9]+)", message)
    if length:
        what = "item(s)" if length.group(1) == "array" else "character(s)"
        bound = "at least" if length.group(2) == ">=" else "at most"
        return path, f"expected {bound} {length.group(3)} {what}"
    number = re.match(r"Expected `int` ([<>]=) ([0-9]+)", message)
    if number:
        return path, f"expected an integer {number.group(1)} {number.group(2)}"
    if path == "schema" and message.startswith("Invalid enum value"):
        return path, "unsupported version (expected 1)"
    if path.endswith("kind") and message.startswith("Invalid value"):
        return path, f"expected one of {', '.join(sorted(ACTIONS))}"
    return path, message[:1].lower() + message[1:]


def _convert(data: Dict[str, Any], model: Type[S]) -> S:
    if not isinstance(data, dict):
        raise InvalidEvent("body", "expected a JSON object")
    try:
        return msgspec.convert(data, model)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(*_readable(*_split(str(exc)))) from None


def validate_wordpress_event(data: Dict[str, Any]) -> Dict[str, Any]:
    """Check a decoded batch (docs/events.md, schema 1) against :class:`Event`; returns it unchanged."""
    _convert(data, Event)
    return data


@dataclass
class PurgeRequest:
    """What a webhook or an admin purge asks for, validated but not yet mapped."""

    site: Optional[str] = None  # site URL or host; needed for keys, ban and purge_all
    urls: Tuple[str, ...] = ()
    keys: Tuple[str, ...] = ()
    content: Optional[Dict[str, Any]] = None  # webhook only: {"url", "old_url", "collections", "keys"}
    purge_all: bool = False
    ban: Optional[str] = None  # admin only: a regex on req.url
    soft: bool = False  # key purges: xkey softpurge instead of purge
    wait: bool = False  # admin only: fan out now and answer with the report


def validate_webhook(data: Dict[str, Any]) -> PurgeRequest:
    """``{"site", "urls", "keys", "content", "purge_all", "soft"}`` -> :class:`PurgeRequest`."""
    body = _convert(data, Webhook)
    request = PurgeRequest(site=body.site, urls=tuple(body.urls), keys=tuple(body.keys),
                           content=msgspec.to_builtins(body.content) if body.content else None,
                           purge_all=body.purge_all, soft=body.soft)
    _need_something(request)
    return request


def validate_purge(data: Dict[str, Any]) -> PurgeRequest:
    """``{"site", "urls", "keys", "ban", "purge_all", "soft", "wait"}`` -> :class:`PurgeRequest`."""
    body = _convert(data, Purge)
    request = PurgeRequest(site=body.site, urls=tuple(body.urls), keys=tuple(body.keys), ban=body.ban,
                           purge_all=body.purge_all, soft=body.soft, wait=body.wait)
    _need_something(request)
    return request


def _need_something(request: PurgeRequest) -> None:
    if not (request.urls or request.keys or request.content or request.purge_all or request.ban):
        raise InvalidEvent("body", "nothing to purge: give urls, keys, content, ban or purge_all")
    if (request.keys or request.purge_all or request.ban) and not request.site:
        raise InvalidEvent("site", "required with keys, ban or purge_all")
