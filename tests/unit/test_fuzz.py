"""Issue 13.4: every route, fuzzed from its own OpenAPI document, answers 2xx or a JSON 4xx -- never a 500.

schemathesis generates bodies from ``/openapi.json`` (whose body schemas are
the msgspec models that validate requests, so the fuzzing covers exactly
what the relay claims to accept). WordPress events are signed with the
relay's secret and the webhook and admin routes get their tokens, so the
fuzzing reaches validation and mapping, not just the 401. Bounded: a fixed
number of examples per route (about 30 s for the module).
"""

import json

from hypothesis import HealthCheck, settings
import pytest
import schemathesis

from fixtures.app import ADMIN_TOKEN, WEBHOOK_TOKEN, app_overrides, signed_headers
from purgebridge.api.app import create_app
from purgebridge.api.openapi import spec

EXAMPLES = 40  # per route: about 30 s for the module on the 2-core CI machine


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory):
    app = create_app(app_overrides(tmp_path_factory.mktemp("fuzz"), PURGEBRIDGE_RETRIES="0",
                                   PURGEBRIDGE_TIMEOUT="0.2", PURGEBRIDGE_WEBHOOK_PURGE_ALL="true"), environ={})
    app.config["TESTING"] = True
    yield app
    app.extensions["purgebridge"].close()


schema = schemathesis.openapi.from_dict(spec())  # the document /openapi.json serves (test_routes checks that)


def _headers(path, raw):
    if path == "/v1/events/wordpress":
        return signed_headers(raw)
    token = WEBHOOK_TOKEN if path == "/v1/webhook" else ADMIN_TOKEN
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_route_answers_500(case, fuzzed_app):
    body = getattr(case, "body", None)
    raw = json.dumps(body).encode("utf-8") if isinstance(body, (dict, list, str, int, float, bool)) else b""
    client = fuzzed_app.test_client()
    response = client.open(case.formatted_path, method=case.method, data=raw or None,
                           headers=_headers(case.path, raw), query_string=case.query)
    assert response.status_code < 500 or response.status_code in (502, 503), (
        case.method, case.path, raw[:500], response.status_code, response.get_data(as_text=True)[:500])
    if response.status_code >= 400 and case.path != "/readyz":  # /readyz's 503 is its documented answer
        assert response.is_json and response.json.get("error"), response.get_data(as_text=True)[:500]
