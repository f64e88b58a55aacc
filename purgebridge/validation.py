"""Request bodies checked against their schema before anything is queued.

Each parser returns plain data (dicts and small dataclasses) or raises
:class:`~purgebridge.errors.InvalidEvent` whose ``field`` is the dotted path of
the first problem (``changes[0].post.id``), so a 400 tells the sender exactly
what to fix. Unknown fields are ignored so that newer plugins can send more
than this relay knows about. The schemas are written down in docs/events.md
(WordPress events) and docs/webhook.md (webhook and admin purge).

URLs are checked here too (CR, LF, spaces, scheme, host) because a URL that
cannot be sent must be refused with the request, not discovered by the worker.
Whether a URL's host is one this relay may purge is the route's job (403).
"""

from dataclasses import dataclass
import json
import re

from purgebridge.errors import InvalidEvent, InvalidURL
from purgebridge.urls import split_url

MAX_CHANGES = 500
MAX_ITEMS = 10_000  # urls or keys in one webhook / purge request
MAX_KEY_LENGTH = 200  # same limit as fanout.keys_for
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_KEY = re.compile(r"^[A-Za-z0-9._:/-]+$")
# A site path of a WordPress network (``/blog2/``): what WordPress allows in a
# site's path, already percent-encoded; no regex can be smuggled into the ban.
_SITE_PATH = re.compile(r"^/(?:[A-Za-z0-9._~%-]+/)*$")
MAX_KEEP_PATHS = 1000

ACTIONS = {
    "post": {"publish", "update", "unpublish", "trash", "delete"},
    "comment": {"approve", "unapprove", "spam", "trash", "edit", "new"},
    "term": {"create", "edit", "delete"},
    "site": {"purge_all", "ping"},  # ping: the plugin's "Send test event", purges nothing
}


def parse_json(body):
    """Decode a UTF-8 JSON object; anything else is a 400 on the field ``body``."""
    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body)
    except UnicodeDecodeError:
        raise InvalidEvent("body", "not UTF-8") from None
    except ValueError as exc:
        raise InvalidEvent("body", f"not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(data, dict):
        raise InvalidEvent("body", "expected a JSON object")
    return data


# --- small typed getters: each names the field it complains about ----------

def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _int(obj, name, where, required=False):
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidEvent(f"{where}{name}", "required")
        return None
    if not _is_int(value):
        raise InvalidEvent(f"{where}{name}", "expected integer")
    return value


def _str(obj, name, where, required=False, nullable=True):
    value = obj.get(name)
    if value is None:
        if required or (name in obj and not nullable):
            raise InvalidEvent(f"{where}{name}", "required" if required else "expected string")
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{where}{name}", "expected string")
    return value


def _bool(obj, name, where):
    value = obj.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidEvent(f"{where}{name}", "expected true or false")
    return value


def _list(obj, name, where, required=False, max_items=MAX_ITEMS, min_items=0):
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidEvent(f"{where}{name}", "required")
        return []
    if not isinstance(value, list):
        raise InvalidEvent(f"{where}{name}", "expected array")
    if len(value) < min_items:
        raise InvalidEvent(f"{where}{name}", f"expected at least {min_items} item(s)")
    if len(value) > max_items:
        raise InvalidEvent(f"{where}{name}", f"expected at most {max_items} items")
    return value


def _object(obj, name, where, required=False):
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidEvent(f"{where}{name}", "required")
        return None
    if not isinstance(value, dict):
        raise InvalidEvent(f"{where}{name}", "expected object")
    return value


def check_url(value, field):
    """An absolute http(s) URL fit to purge; returns it unchanged or raises InvalidEvent."""
    if not isinstance(value, str):
        raise InvalidEvent(field, "expected string")
    try:
        split_url(value)
    except InvalidURL as exc:
        raise InvalidEvent(field, f"invalid URL: {exc.reason}") from None
    return value


def _url(obj, name, where, required=False):
    value = _str(obj, name, where, required=required)
    return None if value is None else check_url(value, f"{where}{name}")


def check_key(value, field):
    """A surrogate key: a short token without separators (xkey splits on spaces and commas)."""
    if not isinstance(value, str):
        raise InvalidEvent(field, "expected string")
    if not value or len(value) > MAX_KEY_LENGTH or not _KEY.match(value):
        raise InvalidEvent(field, f"expected 1-{MAX_KEY_LENGTH} characters from A-Z a-z 0-9 . _ : / -")
    return value


# --- WordPress events (docs/events.md) -------------------------------------

def _term(term, where):
    if not isinstance(term, dict):
        raise InvalidEvent(where.rstrip("."), "expected object")
    _int(term, "id", where, required=True)
    _str(term, "taxonomy", where, required=True)
    _str(term, "rest_base", where)
    _url(term, "url", where)
    _url(term, "url_old", where)


def _post(post, where):
    _int(post, "id", where, required=True)
    for name in ("type", "rest_base", "status_old", "status_new"):
        _str(post, name, where)
    for name in ("url_old", "url_new", "type_archive_url"):
        _url(post, name, where)
    for name in ("date_old", "date_new"):
        value = _str(post, name, where)
        if value is not None and not _DATE.match(value):
            raise InvalidEvent(f"{where}{name}", "expected YYYY-MM-DD")
    author = _object(post, "author", where)
    if author is not None:
        _int(author, "id", f"{where}author.")
        _url(author, "url", f"{where}author.")
    for name in ("terms_old", "terms_new"):
        for index, term in enumerate(_list(post, name, where)):
            _term(term, f"{where}{name}[{index}].")


def validate_wordpress_event(data):
    """Check a decoded batch (docs/events.md, schema 1); returns it unchanged."""
    schema = _int(data, "schema", "", required=True)
    if schema != 1:
        raise InvalidEvent("schema", "unsupported version (expected 1)")
    _url(data, "site", "", required=True)
    _int(data, "sent_at", "")
    changes = _list(data, "changes", "", required=True, max_items=MAX_CHANGES, min_items=1)
    for index, change in enumerate(changes):
        where = f"changes[{index}]."
        if not isinstance(change, dict):
            raise InvalidEvent(f"changes[{index}]", "expected object")
        kind = _str(change, "kind", where, required=True)
        if kind not in ACTIONS:
            raise InvalidEvent(f"{where}kind", f"expected one of {', '.join(sorted(ACTIONS))}")
        action = _str(change, "action", where, required=True)
        if action not in ACTIONS[kind]:
            raise InvalidEvent(f"{where}action", f"for kind {kind} expected one of {', '.join(sorted(ACTIONS[kind]))}")
        if kind in ("post", "comment"):
            _post(_object(change, "post", where, required=True), f"{where}post.")
        if kind == "comment":
            _int(change, "comment_id", where, required=True)
        if kind == "term":
            _term(_object(change, "term", where, required=True), f"{where}term.")
        if kind == "site":
            _str(change, "reason", where)
            for index, path in enumerate(_list(change, "keep_paths", where, max_items=MAX_KEEP_PATHS)):
                if not isinstance(path, str) or len(path) > 200 or not _SITE_PATH.match(path):
                    raise InvalidEvent(f"{where}keep_paths[{index}]",
                                       "expected a site path such as /blog2/ (A-Z a-z 0-9 . _ ~ % - between slashes)")
    return data


# --- webhook and admin purge (docs/webhook.md) ------------------------------

@dataclass
class PurgeRequest:
    """What a webhook or an admin purge asks for, validated but not yet mapped."""

    site: str = None           # site URL or host; needed for keys, ban and purge_all
    urls: tuple = ()
    keys: tuple = ()
    content: dict = None       # webhook only: {"url", "old_url", "collections", "keys"}
    purge_all: bool = False
    ban: str = None            # admin only: a regex on req.url
    soft: bool = False         # key purges: xkey softpurge instead of purge
    wait: bool = False         # admin only: fan out now and answer with the report


def _common(data):
    site = _str(data, "site", "")
    urls = tuple(check_url(url, f"urls[{i}]") for i, url in enumerate(_list(data, "urls", "")))
    keys = tuple(check_key(key, f"keys[{i}]") for i, key in enumerate(_list(data, "keys", "")))
    return site, urls, keys


def _content(content):
    where = "content."
    _url(content, "url", where)
    _url(content, "old_url", where)
    for index, url in enumerate(_list(content, "collections", where)):
        check_url(url, f"{where}collections[{index}]")
    for index, key in enumerate(_list(content, "keys", where)):
        check_key(key, f"{where}keys[{index}]")
    if not content.get("url") and not content.get("old_url") and not content.get("collections") \
            and not content.get("keys"):
        raise InvalidEvent("content", "expected at least one of url, old_url, collections, keys")
    return content


def validate_webhook(data):
    """``{"site", "urls", "keys", "content", "purge_all"}`` -> :class:`PurgeRequest`."""
    site, urls, keys = _common(data)
    content = _object(data, "content", "")
    if content is not None:
        _content(content)
    request = PurgeRequest(site=site, urls=urls, keys=keys, content=content,
                           purge_all=_bool(data, "purge_all", ""), soft=_bool(data, "soft", ""))
    _need_something(request)
    return request


def validate_purge(data):
    """``{"site", "urls", "keys", "ban", "purge_all", "soft", "wait"}`` -> :class:`PurgeRequest`."""
    site, urls, keys = _common(data)
    ban = _str(data, "ban", "")
    if ban is not None:
        if not ban or any(c in ban for c in "\r\n\0"):
            raise InvalidEvent("ban", "expected a non-empty regex without CR, LF or NUL")
        try:
            re.compile(ban)
        except re.error as exc:
            raise InvalidEvent("ban", f"not a valid regex ({exc})") from None
    request = PurgeRequest(site=site, urls=urls, keys=keys, ban=ban,
                           purge_all=_bool(data, "purge_all", ""), soft=_bool(data, "soft", ""),
                           wait=_bool(data, "wait", ""))
    _need_something(request)
    return request


def _need_something(request):
    if not (request.urls or request.keys or request.content or request.purge_all or request.ban):
        raise InvalidEvent("body", "nothing to purge: give urls, keys, content, ban or purge_all")
    if (request.keys or request.purge_all or request.ban) and not request.site:
        raise InvalidEvent("site", "required with keys, ban or purge_all")
