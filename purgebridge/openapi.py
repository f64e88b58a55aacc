"""The OpenAPI 3.0 document served at ``/openapi.json``.

Kept as Python data next to the routes (not a packaged JSON file) so it ships
with the code and a test can compare its paths and schemas with what the
routes really accept (tests/test_routes.py checks paths and methods against
the Flask url map, and feeds the documented examples to the routes).
"""

import copy

from purgebridge import __version__
from purgebridge.validation import MAX_CHANGES, MAX_ITEMS

_ERROR = {"type": "object", "properties": {"error": {"type": "string"},
                                           "field": {"type": "string", "description": "dotted path of the bad field"}},
          "required": ["error"]}

_ACCEPTED = {"type": "object", "required": ["event_id", "queued"], "properties": {
    "event_id": {"type": "string"},
    "queued": {"type": "integer", "description": "WordPress events: changes accepted from the batch (mapped to "
               "URLs afterwards); webhook and admin purges: distinct invalidations stored, each for every node"},
    "nodes": {"type": "integer"},
    "merged": {"type": "integer", "description": "webhook and admin purges only: (node, item) pairs merged into "
               "purges already waiting"},
}}

_URLS = {"type": "array", "maxItems": MAX_ITEMS, "items": {"type": "string", "format": "uri",
                                                            "description": "absolute http(s) URL on a configured site"}}
_KEYS = {"type": "array", "maxItems": MAX_ITEMS, "items": {"type": "string", "pattern": "^[A-Za-z0-9._:/-]{1,200}$"}}

_TERM = {"type": "object", "required": ["id", "taxonomy"], "properties": {
    "id": {"type": "integer"}, "taxonomy": {"type": "string"}, "rest_base": {"type": "string", "nullable": True},
    "url": {"type": "string"}, "url_old": {"type": "string", "nullable": True}}}

_NULLABLE_STRING = {"type": "string", "nullable": True}
_POST = {"type": "object", "required": ["id"], "properties": {
    "id": {"type": "integer"}, "type": {"type": "string"}, "rest_base": _NULLABLE_STRING,
    "status_old": _NULLABLE_STRING, "status_new": _NULLABLE_STRING,
    "url_old": _NULLABLE_STRING, "url_new": _NULLABLE_STRING,
    "date_old": {"type": "string", "format": "date", "nullable": True},
    "date_new": {"type": "string", "format": "date", "nullable": True},
    "author": {"type": "object", "properties": {"id": {"type": "integer"}, "url": {"type": "string"}}},
    "terms_old": {"type": "array", "items": {"$ref": "#/components/schemas/Term"}},
    "terms_new": {"type": "array", "items": {"$ref": "#/components/schemas/Term"}},
    "type_archive_url": _NULLABLE_STRING}}

_CHANGE = {"type": "object", "required": ["kind", "action"], "properties": {
    "kind": {"type": "string", "enum": ["post", "comment", "term", "site", "urls"]},
    "action": {"type": "string", "description": "post: publish update unpublish trash delete; comment: approve "
                                                "unapprove spam trash edit new; term: create edit delete; site: purge_all "
                                                "ping; urls: purge"},
    "post": {"$ref": "#/components/schemas/Post"}, "comment_id": {"type": "integer"},
    "term": {"$ref": "#/components/schemas/Term"}, "reason": {"type": "string"},
    "urls": {"type": "array", "items": {"type": "string", "format": "uri"},
             "description": "kind urls: absolute URLs on the event's site (its host, under its home path)"},
    "keys": _KEYS}}

_EVENT = {"type": "object", "required": ["schema", "site", "changes"], "properties": {
    "schema": {"type": "integer", "enum": [1]}, "site": {"type": "string", "description": "home_url('/')"},
    "sent_at": {"type": "integer"},
    "changes": {"type": "array", "minItems": 1, "maxItems": MAX_CHANGES,
                "items": {"$ref": "#/components/schemas/Change"}}}}

_CONTENT = {"type": "object", "description": "mapped like a post: the URL, old URL, each collection with its "
                                             "pagination and feed, the keys", "properties": {
    "url": {"type": "string"}, "old_url": {"type": "string"},
    "collections": _URLS, "keys": _KEYS}}

_WEBHOOK = {"type": "object", "description": "at least one of urls, keys, content, purge_all; site is required "
                                             "with keys or purge_all", "properties": {
    "site": {"type": "string", "description": "host, host:port or site URL"},
    "urls": _URLS, "keys": _KEYS, "content": {"$ref": "#/components/schemas/Content"},
    "purge_all": {"type": "boolean"}, "soft": {"type": "boolean", "description": "xkey soft purge for keys"}}}

_PURGE = {"type": "object", "description": "at least one of urls, keys, ban, purge_all; site is required with "
                                           "keys, ban or purge_all", "properties": {
    "site": {"type": "string"}, "urls": _URLS, "keys": _KEYS,
    "ban": {"type": "string", "description": "regex on req.url, sent as a BAN with X-Ban-Url"},
    "purge_all": {"type": "boolean"}, "soft": {"type": "boolean"},
    "wait": {"type": "boolean", "description": "send now and answer with the per-node report"}}}


def _error(description):
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(description, schema=None):
    body = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return body


_BEARER = [{"bearer": []}]

_SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "purgebridge relay", "version": __version__,
             "description": "Turns CMS content changes into PURGE/BAN requests on every Varnish node."},
    "paths": {
        "/v1/events/wordpress": {"post": {
            "summary": "Signed batch of WordPress changes (docs/events.md)",
            "security": [{"timestamp": [], "signature": []}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Event"}}}},
            "responses": {"202": _ok("durably queued", _ACCEPTED),
                          "400": _error("not JSON or breaks the schema; `field` names the field"),
                          "401": _error("signature or timestamp missing or wrong, or skew over 300 s"),
                          "403": _error("site not configured on this relay"),
                          "409": _error("signature already used within 300 s (replay)"),
                          "413": _error("body over 256 KiB"),
                          "503": _error("no Varnish nodes configured")}}},
        "/v1/webhook": {"post": {
            "summary": "URLs, keys or a content object from any CMS (docs/webhook.md)",
            "security": _BEARER,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Webhook"}}}},
            "responses": {"202": _ok("durably queued", _ACCEPTED),
                          "400": _error("not JSON, schema, or a URL with CR/LF/space"),
                          "401": _error("missing or wrong bearer token"),
                          "403": _error("a URL or site not configured on this relay"),
                          "413": _error("body over 256 KiB"),
                          "503": _error("no Varnish nodes configured")}}},
        "/v1/purge": {"post": {
            "summary": "Admin purge: URLs, keys, ban or everything of a site",
            "security": _BEARER,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Purge"}}}},
            "responses": {"200": _ok("wait: every node confirmed; per-node report", {"type": "object"}),
                          "202": _ok("durably queued", _ACCEPTED),
                          "400": _error("not JSON or breaks the schema"),
                          "401": _error("missing or wrong admin token"),
                          "403": _error("a URL or site not configured on this relay"),
                          "413": _error("body over 256 KiB"),
                          "502": _ok("wait: some purges failed; report, failures queued for retry",
                                     {"type": "object"}),
                          "503": _error("no Varnish nodes configured")}}},
        "/v1/status": {"get": {
            "summary": "Nodes, queue depth, oldest pending age, dead letters, totals",
            "security": _BEARER,
            "responses": {"200": _ok("status", {"type": "object"}),
                          "401": _error("missing or wrong admin token")}}},
        "/healthz": {"get": {"summary": "The process answers", "responses": {"200": _ok("alive")}}},
        "/readyz": {"get": {"summary": "Queue writable and at least one node reachable",
                            "responses": {"200": _ok("ready"), "503": _ok("not ready; `problems` says why")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "text exposition format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _ok("OpenAPI 3.0")}}},
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "timestamp": {"type": "apiKey", "in": "header", "name": "X-Purgebridge-Timestamp"},
            "signature": {"type": "apiKey", "in": "header", "name": "X-Purgebridge-Signature",
                          "description": "sha256=hex(HMAC-SHA256(secret, timestamp + '.' + body))"},
        },
        "schemas": {"Error": _ERROR, "Event": _EVENT, "Change": _CHANGE, "Post": _POST, "Term": _TERM,
                    "Webhook": _WEBHOOK, "Content": _CONTENT, "Purge": _PURGE},
    },
}


def spec():
    """A copy of the document (callers may not change the shared one)."""
    return copy.deepcopy(_SPEC)
