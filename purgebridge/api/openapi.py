"""The OpenAPI 3.1 document served at ``/openapi.json``.

The request-body schemas are not written here: they are generated from the
msgspec models in ``core.events`` that also check every request, so the
document cannot drift from what the routes accept. Paths, statuses and
security are kept as Python data next to the routes (tests/unit/test_routes.py
checks paths and methods against the Flask url map; tests/unit/test_fuzz.py
fuzzes every route from this document with schemathesis).
"""

import copy
from typing import Any, Dict, List, Optional

import msgspec

from purgebridge import __version__
from purgebridge.core.signing import MAX_AGE, MAX_AHEAD
from purgebridge.core.events import BODIES

_BODY_SCHEMAS = msgspec.json.schema_components(BODIES, ref_template="#/components/schemas/{name}")[1]

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

def _error(description: str) -> Dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(description: str, schema: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    body: Dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return body


_BEARER: List[Dict[str, List[str]]] = [{"bearer": []}]

_SPEC = {
    "openapi": "3.1.0",
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
                          "401": _error(f"signature missing or wrong (each site checks its own secret), or timestamp "
                                        f"over {MAX_AGE} s old or {MAX_AHEAD} s ahead"),
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
                          "403": _error("a URL or site not configured on this relay, or purge_all without "
                                        "PURGEBRIDGE_WEBHOOK_PURGE_ALL"),
                          "413": _error("body over 256 KiB"),
                          "503": _error("no Varnish nodes configured")}}},
        "/v1/ghost/{site}": {"post": {
            "summary": "A Ghost custom integration's webhook, as Ghost sends it (docs/cms/ghost.md)",
            "parameters": [{"name": "site", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "the site's host, as listed in the sites file"}],
            "security": [{"ghost_signature": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": _ok("nothing to purge (a draft, or site.changed echoing a content event)",
                                     {"type": "object"}),
                          "202": _ok("durably queued", _ACCEPTED),
                          "400": _error("not JSON, or not a Ghost webhook body"),
                          "401": _error("X-Ghost-Signature missing, wrong or outside the replay window, or no "
                                        "cms.ghost secret for the site"),
                          "403": _error("site not configured on this relay"),
                          "413": _error("body over 256 KiB"),
                          "503": _error("no Varnish nodes configured")}}},
        "/v1/cms/{site}": {"post": {
            "summary": "Strapi's webhook body or a Directus Flow's trigger, mapped by the site's templates "
                       "(docs/cms/strapi.md, docs/cms/directus.md)",
            "parameters": [{"name": "site", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "the site's host, as listed in the sites file"}],
            "security": _BEARER,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": _ok("nothing to purge (a draft save)", {"type": "object"}),
                          "202": _ok("durably queued", _ACCEPTED),
                          "400": _error("not JSON, not a known body, or a model without templates"),
                          "401": _error("missing or wrong bearer token, or no cms.templates for the site"),
                          "403": _error("site not configured on this relay"),
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
        "/v1/sites/status": {"post": {
            "summary": "What each node did with ONE site's purges, signed with that site's secret like an event "
                       "(docs/wordpress.md, \"The relay's node truth\")",
            "security": [{"timestamp": [], "signature": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["site"], "additionalProperties": False,
                "properties": {"site": {"type": "string", "description": "the site's URL or host"}}}}}},
            "responses": {"200": _ok("per node: state (delivered, sending, waiting, down, refused, dead_lettered, "
                                     "unknown), up, down_since, pending, dead, keys", {"type": "object"}),
                          "400": _error("site missing, or a field other than site"),
                          "401": _error(f"signature missing or wrong for that site, or timestamp over {MAX_AGE} s "
                                        f"old or {MAX_AHEAD} s ahead"),
                          "403": _error("site not configured on this relay"),
                          "413": _error("body over 256 KiB"),
                          "503": _error("queue unreachable")}}},
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
            "ghost_signature": {"type": "apiKey", "in": "header", "name": "X-Ghost-Signature",
                                "description": "sha256=hex(HMAC-SHA256(secret, body + t)), t=<ms>"},
            "timestamp": {"type": "apiKey", "in": "header", "name": "X-Purgebridge-Timestamp"},
            "signature": {"type": "apiKey", "in": "header", "name": "X-Purgebridge-Signature",
                          "description": "sha256=hex(HMAC-SHA256(secret, timestamp + '.' + body))"},
        },
        "schemas": {"Error": _ERROR, **_BODY_SCHEMAS},
    },
}


def spec() -> Dict[str, Any]:
    """A copy of the document (callers may not change the shared one)."""
    return copy.deepcopy(_SPEC)
