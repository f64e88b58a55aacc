"""The HTTP API through the test client (the RSGI adapter): every refusal queues nothing; accepts are on disk."""

import io
import json
import re
import logging
import time

import pytest

from fixtures.faults import FaultServer
from fixtures.app import (ADMIN_TOKEN, SECRET, SITE, WEBHOOK_TOKEN, app_overrides, bearer, encode, event_body,
                          post_change, send_event, signed_headers)
from purgebridge.api import signed_events
from purgebridge.api.app import MAX_BODY, create_app
from purgebridge.core.errors import ConfigError
from purgebridge.api.openapi import spec
from fixtures.app import admin, assert_nothing_queued, expand_pending, hook, queue_of, refused


def expanded(app):
    """Turn journaled events into deliveries now, as the worker's expander would (no worker runs here)."""
    expand_pending(app)
    return queue_of(app)


def targets(app, node="127.0.0.1:9"):
    rows = expanded(app)._db().execute("SELECT item FROM deliveries WHERE node = ?", (node,)).fetchall()
    return [json.loads(r[0]) for r in rows]


# --- POST /v1/events/wordpress ------------------------------------------------------------

def test_signed_event_is_accepted_and_on_disk(app, client):
    response = send_event(client)
    assert response.status_code == 202
    body = response.json
    assert body["event_id"] and body["queued"] == 1 and body["nodes"] == 2   # one change accepted
    row = queue_of(app)._db().execute("SELECT body, signature, expanded_at FROM events WHERE id = ?",
                                      (body["event_id"],)).fetchone()
    assert json.loads(row[0])["changes"][0]["post"]["id"] == 42 and row[1].startswith("sha256=") and row[2] is None
    assert queue_of(app).stats()["journal_pending"] == 1
    items = targets(app)
    assert len(items) > 10
    assert len(targets(app, "127.0.0.1:10")) == len(items)
    assert queue_of(app).stats()["journal_pending"] == 0
    urls = {i["label"] for i in items if i["method"] == "PURGE"}
    assert "https://blog.example.test/2026/11/26/post-42/" in urls
    assert "https://blog.example.test/category/news/" in urls
    assert any(i["method"] == "PURGEKEYS" for i in items)
    row = queue_of(app)._db().execute("SELECT source, site FROM events WHERE id = ?", (body["event_id"],)).fetchone()
    assert row == ("wordpress", "blog.example.test")


@pytest.mark.parametrize("drop", ["X-Purgebridge-Signature", "X-Purgebridge-Timestamp"])
def test_missing_signature_headers(app, client, drop):
    raw = encode(event_body())
    headers = signed_headers(raw)
    del headers[drop]
    refused(client.post("/v1/events/wordpress", data=raw, headers=headers), 401, app)


def test_wrong_secret(app, client):
    refused(send_event(client, secret="not-the-secret"), 401, app)


def test_tampered_body(app, client):
    raw = encode(event_body())
    headers = signed_headers(raw)
    refused(client.post("/v1/events/wordpress", data=raw.replace(b"post-42", b"post-43"), headers=headers), 401, app)


@pytest.mark.parametrize("skew,says", [(-241, "240 s old"), (61, "60 s ahead"), (200, "60 s ahead"),
                                       (-3600, "240 s old")])
def test_timestamp_skew(app, client, skew, says):
    body = refused(send_event(client, timestamp=int(time.time()) + skew), 401, app)
    assert says in body["error"]


@pytest.mark.parametrize("skew", [-230, 50])
def test_skew_inside_window_is_fine(client, skew):
    assert send_event(client, timestamp=int(time.time()) + skew).status_code == 202


def test_replay_is_409_and_adds_nothing(app, client):
    raw = encode(event_body())
    headers = signed_headers(raw)
    assert client.post("/v1/events/wordpress", data=raw, headers=headers).status_code == 202
    before = queue_of(app).stats()
    again = client.post("/v1/events/wordpress", data=raw, headers=headers)
    assert again.status_code == 409
    after = queue_of(app).stats()
    assert after["totals"]["events"] == before["totals"]["events"] == 1
    assert after["depth"] == before["depth"]


def test_replay_cache_survives_restart(tmp_path):
    raw = encode(event_body())
    headers = signed_headers(raw)
    first = create_app(app_overrides(tmp_path), environ={})
    assert first.test_client().post("/v1/events/wordpress", data=raw, headers=headers).status_code == 202
    first.extensions["purgebridge"].close()
    second = create_app(app_overrides(tmp_path), environ={})
    try:
        assert second.test_client().post("/v1/events/wordpress", data=raw, headers=headers).status_code == 409
    finally:
        second.extensions["purgebridge"].close()


def test_body_too_large_by_content_length(app, client):
    raw = b"{" + b" " * MAX_BODY + b"}"
    refused(client.post("/v1/events/wordpress", data=raw, headers=signed_headers(raw)), 413, app)


def chunked(app, raw, headers):
    """A chunked request: no Content-Length, the body arrives in pieces (as granian hands it over)."""
    response = app.test_client().post("/v1/events/wordpress", data=raw,
                                      headers=dict(headers, **{"Transfer-Encoding": "chunked"}))
    return response.status_code, response.get_json()


@pytest.mark.parametrize("extra", [1, 1000, MAX_BODY])
def test_body_too_large_without_content_length(app, extra):
    """A chunked body has no Content-Length: the actual length is checked while reading."""
    raw = b"{" + b" " * (MAX_BODY - 2 + extra) + b"}"
    assert len(raw) == MAX_BODY + extra
    status, body = chunked(app, raw, signed_headers(raw))
    assert status == 413 and "256 KiB" in body["error"]
    assert_nothing_queued(app)


def test_chunked_body_at_the_limit_is_accepted(app):
    raw = encode(event_body())
    raw = raw[:-1] + b" " * (MAX_BODY - len(raw)) + b"}"
    status, body = chunked(app, raw, signed_headers(raw))
    assert status == 202, body


def test_body_at_the_limit_is_read(app, client):
    body = event_body()
    raw = encode(body)
    raw = raw[:-1] + b" " * (MAX_BODY - len(raw)) + b"}"
    assert len(raw) == MAX_BODY
    assert send_event(client, body=raw).status_code == 202


@pytest.mark.parametrize("raw,field", [(b"{not json", "body"), (b"[]", "body"), (b"\xff", "body")])
def test_invalid_json(app, client, raw, field):
    refused(send_event(client, body=raw), 400, app, field=field)


def test_schema_error_names_the_field(app, client):
    body = event_body([post_change(id="42")])
    out = refused(send_event(client, body=body), 400, app, field="changes[0].post.id")
    assert out["error"] == "changes[0].post.id: expected integer"


def test_site_not_configured(app, client):
    body = event_body([post_change(site="https://evil.example.test")], site="https://evil.example.test")
    refused(send_event(client, body=body), 403, app)


def test_mapped_url_on_other_host_is_never_purged(app, client):
    """A post on a configured site whose permalink points elsewhere must not purge that host."""
    body = event_body([post_change(url_new="https://other.example.test/hello/")])
    assert send_event(client, body=body).status_code == 202
    hosts = {i["host"] for i in targets(app)}
    assert hosts == {"blog.example.test"}


def test_no_nodes_configured(tmp_path):
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_NODES=""), environ={})
    try:
        refused(send_event(app.test_client()), 503, app)
    finally:
        app.extensions["purgebridge"].close()


def test_sites_file_with_per_site_secrets(tmp_path):
    sites = tmp_path / "sites.json"
    sites.write_text(json.dumps({"sites": [
        {"host": "blog.example.test", "secret_env": "BLOG_SECRET", "mapping": {"pagination": 0}},
        {"host": "shop.example.test", "secret": "shop-secret-123"},
    ]}))
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_SECRET="", PURGEBRIDGE_SITES="",
                                   PURGEBRIDGE_SITES_FILE=str(sites)),
                     environ={"BLOG_SECRET": "blog-secret-456"})
    client = app.test_client()
    try:
        shop = event_body([post_change(site="https://shop.example.test")], site="https://shop.example.test")
        # The shop's secret cannot sign for the blog, and vice versa: each site checks its own secret only.
        refused(send_event(client, body=event_body(), secret="shop-secret-123"), 401, app)
        refused(send_event(client, body=shop, secret="blog-secret-456"), 401, app)
        assert send_event(client, body=event_body(), secret="blog-secret-456").status_code == 202
        assert send_event(client, body=shop, secret="shop-secret-123").status_code == 202
        labels = {i["label"] for i in targets(app)}
        assert not any("/page/" in label for label in labels if "blog.example.test" in label)  # pagination 0
        assert any("shop.example.test/page/2/" in label for label in labels)                   # default 3
    finally:
        app.extensions["purgebridge"].close()


def test_bad_sites_file_is_a_config_error(tmp_path):
    sites = tmp_path / "sites.json"
    sites.write_text(json.dumps({"sites": [{"host": "blog.example.test", "mapping": {"paginashun": 2}}]}))
    with pytest.raises(ConfigError, match="paginashun"):
        create_app(app_overrides(tmp_path, PURGEBRIDGE_SITES_FILE=str(sites)), environ={})
    sites.write_text(json.dumps({"sites": [{"host": "blog.example.test", "secret_env": "NOPE"}]}))
    with pytest.raises(ConfigError, match="NOPE is not set"):
        create_app(app_overrides(tmp_path, PURGEBRIDGE_SITES_FILE=str(sites)), environ={})


# --- POST /v1/webhook -----------------------------------------------------------------------

def test_webhook_urls_and_keys(app, client):
    response = hook(client, {"site": "blog.example.test", "urls": ["https://blog.example.test/a/",
                                                                   "http://blog.example.test/a/"],
                             "keys": ["post-7", "front"]})
    assert response.status_code == 202
    items = targets(app)
    assert {(i["method"], i["target"]) for i in items} == {("PURGE", "/a/"), ("PURGEKEYS", "/")}
    assert len([i for i in items if i["method"] == "PURGE"]) == 2   # http and https variants
    keys = [i for i in items if i["method"] == "PURGEKEYS"][0]
    assert keys["headers"] == [["xkey-purge", "post-7 front"]] and keys["host"] == "blog.example.test"


def test_webhook_content_goes_through_mapping(app, client):
    response = hook(client, {"content": {"url": "https://blog.example.test/news/hello/",
                                         "old_url": "https://blog.example.test/news/hi/",
                                         "collections": ["https://blog.example.test/news/"]}})
    assert response.status_code == 202
    labels = {i["label"] for i in targets(app)}
    assert {"https://blog.example.test/news/hello/", "https://blog.example.test/news/hi/",
            "https://blog.example.test/news/", "https://blog.example.test/news/page/2/",
            "https://blog.example.test/news/feed/"} <= labels


def test_webhook_purge_all_is_one_ban(tmp_path):
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_WEBHOOK_PURGE_ALL="true"), environ={})
    try:
        assert hook(app.test_client(), {"site": "127.0.0.1:8080", "purge_all": True,
                                        "urls": ["http://127.0.0.1:8080/x"]}).status_code == 202
        (item,) = targets(app)
        assert item["method"] == "BAN" and item["host"] == "127.0.0.1:8080"
    finally:
        app.extensions["purgebridge"].close()


def test_webhook_token_cannot_purge_a_whole_site_by_default(app, client):
    """docs/webhook.md: a CMS that can purge its pages cannot ban a whole site (that takes the admin token)."""
    out = refused(hook(client, {"site": "blog.example.test", "purge_all": True}), 403, app, field="purge_all")
    assert "admin token" in out["error"]


@pytest.mark.parametrize("token", [None, "wrong-token", ADMIN_TOKEN])
def test_webhook_token(app, client, token):
    refused(hook(client, {"urls": ["https://blog.example.test/a/"]}, token=token), 401, app)


def test_webhook_token_not_configured(tmp_path):
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_WEBHOOK_TOKEN=""), environ={})
    try:
        out = refused(hook(app.test_client(), {"urls": ["https://blog.example.test/a/"]}, token="anything"), 401, app)
        assert "not configured" in out["error"]
    finally:
        app.extensions["purgebridge"].close()


@pytest.mark.parametrize("url,field", [
    ("https://blog.example.test/a\r\nX-Evil: 1", "urls[0]"),
    ("https://blog.example.test/a b", "urls[0]"),
    ("https://blog.example.test/a\nb", "urls[0]"),
    ("ftp://blog.example.test/a", "urls[0]"),
])
def test_webhook_bad_urls(app, client, url, field):
    refused(hook(client, {"urls": [url]}), 400, app, field=field)


@pytest.mark.parametrize("body", [
    {"urls": ["https://blog.example.test/a/", "https://evil.example.test/a/"]},
    {"site": "evil.example.test", "keys": ["post-1"]},
    {"site": "blog.example.test:8443", "purge_all": True},
    {"content": {"url": "https://evil.example.test/x/"}},
    {"content": {"url": "https://blog.example.test/x/", "collections": ["https://evil.example.test/"]}},
])
def test_webhook_unknown_sites(app, client, body):
    refused(hook(client, body), 403, app)


@pytest.mark.parametrize("body,field", [
    ({}, "body"), ({"keys": ["a"]}, "site"), ({"urls": "x"}, "urls"), ({"keys": ["a b"], "site": "x"}, "keys[0]"),
    ({"content": {"url": 3}}, "content.url"),
])
def test_webhook_schema(app, client, body, field):
    refused(hook(client, body), 400, app, field=field)


def test_webhook_not_json(app, client):
    response = client.post("/v1/webhook", data=b"urls=x", headers=bearer(WEBHOOK_TOKEN))
    refused(response, 400, app, field="body")


def test_webhook_too_large(app, client):
    raw = b'{"urls": [' + b" " * MAX_BODY + b"]}"
    refused(client.post("/v1/webhook", data=raw, headers=bearer(WEBHOOK_TOKEN)), 413, app)


# --- POST /v1/purge ---------------------------------------------------------------------------

def test_admin_purge_is_queued(app, client):
    response = admin(client, {"site": "blog.example.test", "ban": "^/category/", "urls": ["https://blog.example.test/"],
                              "keys": ["term-3"], "soft": True})
    assert response.status_code == 202
    items = {i["method"]: i for i in targets(app)}
    assert items["BAN"]["headers"] == [["X-Ban-Url", "^/category/"]]
    assert items["PURGEKEYS"]["headers"] == [["xkey-softpurge", "term-3"]]
    assert items["PURGE"]["target"] == "/"


@pytest.mark.parametrize("token", [None, WEBHOOK_TOKEN, "x"])
def test_admin_token(app, client, token):
    refused(admin(client, {"urls": ["https://blog.example.test/"]}, token=token), 401, app)


@pytest.mark.parametrize("body,status", [
    ({"ban": "^/x"}, 400), ({"site": "blog.example.test", "ban": "("}, 400),
    ({"urls": ["https://evil.example.test/"]}, 403), ({"site": "evil.example.test", "purge_all": True}, 403),
])
def test_admin_refusals(app, client, body, status):
    refused(admin(client, body), status, app)


@pytest.fixture
def fake_nodes():
    servers = [FaultServer(lambda n, line: ("status", 200)), FaultServer(lambda n, line: ("status", 200))]
    yield servers
    for server in servers:
        server.stop()


def test_admin_purge_wait_reports_per_node(tmp_path, fake_nodes):
    nodes = ",".join(f"127.0.0.1:{s.port}" for s in fake_nodes)
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_NODES=nodes), environ={})
    try:
        response = admin(app.test_client(), {"urls": ["https://blog.example.test/x/"], "wait": True})
        assert response.status_code == 200
        assert [n["purged"] for n in response.json["nodes"]] == [1, 1]
        assert response.json["queued_for_retry"] == 0
        assert all(s.requests and s.requests[0].startswith("PURGE /x/ HTTP/1.1") for s in fake_nodes)
        assert queue_of(app).stats()["depth"] == 0
    finally:
        app.extensions["purgebridge"].close()


def test_admin_purge_wait_queues_what_failed(tmp_path, fake_nodes):
    fake_nodes[1].stop()
    nodes = ",".join(f"127.0.0.1:{s.port}" for s in fake_nodes)
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_NODES=nodes, PURGEBRIDGE_RETRIES="0"), environ={})
    try:
        response = admin(app.test_client(), {"urls": ["https://blog.example.test/x/"], "wait": True})
        assert response.status_code == 502
        assert response.json["queued_for_retry"] == 1
        stats = queue_of(app).stats()
        assert stats["nodes"][f"127.0.0.1:{fake_nodes[1].port}"]["pending"] == 1
        assert f"127.0.0.1:{fake_nodes[0].port}" not in stats["nodes"] or \
            stats["nodes"][f"127.0.0.1:{fake_nodes[0].port}"]["pending"] == 0
    finally:
        app.extensions["purgebridge"].close()


# --- status, health, metrics, openapi ------------------------------------------------------

def test_status_needs_admin_token(app, client):
    assert client.get("/v1/status").status_code == 401
    assert client.get("/v1/status", headers=bearer(WEBHOOK_TOKEN)).status_code == 401


def test_status_shows_nodes_queue_and_dead_letters(app, client):
    send_event(client)
    queue = expanded(app)
    queue.dead(queue.claim("127.0.0.1:9", limit=1), "HTTP 405 Method Not Allowed")
    body = client.get("/v1/status", headers=bearer(ADMIN_TOKEN)).json
    assert [n["node"] for n in body["nodes"]] == ["127.0.0.1:9", "127.0.0.1:10"]
    assert body["queue"]["dead"] == 1 and body["queue"]["depth"] > 0
    assert body["queue"]["oldest_pending_age"] >= 0
    assert body["dead_letters"][0]["reason"] == "HTTP 405 Method Not Allowed"
    assert body["totals"]["events"] == 1
    assert body["nodes"][0]["dead"] == 1 and body["nodes"][0]["up"] is None
    assert body["sites"] == ["127.0.0.1:8080", "blog.example.test"]


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok"}


def readyz_after_check(client, deadline=10.0):
    """/readyz once the background reachability check has finished a round (the first answer says 'not yet')."""
    stop = time.monotonic() + deadline
    while True:
        response = client.get("/readyz")
        if "node reachability not checked yet" not in response.json["problems"] or time.monotonic() > stop:
            return response
        time.sleep(0.02)


def test_readyz_without_reachable_node(client):
    response = readyz_after_check(client)
    assert response.status_code == 503
    assert response.json["problems"] == ["no node reachable"] and response.json["queue_writable"]


def test_readyz_with_a_reachable_node(tmp_path, fake_nodes):
    nodes = f"127.0.0.1:{fake_nodes[0].port},127.0.0.1:9"
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_NODES=nodes), environ={})
    try:
        response = readyz_after_check(app.test_client())
        assert response.status_code == 200
        assert response.json["reachable_nodes"] == [f"127.0.0.1:{fake_nodes[0].port}"]
        app.extensions["purgebridge"].queue.close()
        assert app.test_client().get("/readyz").status_code == 503
    finally:
        app.extensions["purgebridge"].close()


def test_metrics_count_results_per_app(app, client, tmp_path):
    send_event(client)
    send_event(client, secret="wrong")
    expanded(app)
    other = create_app(app_overrides(tmp_path / "other"), environ={})   # a second registry, no clash
    try:
        text = client.get("/metrics").get_data(as_text=True)
        assert 'purgebridge_events_total{result="202",route="wordpress_event"} 1.0' in text
        assert 'purgebridge_events_total{result="401",route="wordpress_event"} 1.0' in text
        assert 'purgebridge_queue_depth{node="127.0.0.1:9"}' in text
        assert "purgebridge_event_to_purged_seconds_bucket" in text
        assert "purgebridge_events_total{" not in other.test_client().get("/metrics").get_data(as_text=True)
    finally:
        other.extensions["purgebridge"].close()


def test_signed_event_route_answers_other_methods_405_in_json(client):
    response = client.get("/v1/events/wordpress")
    assert (response.status_code, response.headers["Allow"], response.json["status"]) == (405, "POST", 405)


def test_openapi_matches_the_routes(app, client):
    document = client.get("/openapi.json").json
    assert document == spec()
    routes = {signed_events.PATH: {"post"}}   # the signed-event route is answered by the RSGI adapter, not Flask
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)  # Flask's <site> is OpenAPI's {site}
            routes.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    documented = {path: set(ops) for path, ops in document["paths"].items()}
    assert documented == routes
    webhook = document["components"]["schemas"]["Webhook"]["properties"]
    assert set(webhook) == {"site", "urls", "keys", "content", "purge_all", "soft"}
    purge = document["components"]["schemas"]["Purge"]["properties"]
    assert set(purge) == {"site", "urls", "keys", "ban", "purge_all", "soft", "wait"}
    event = document["components"]["schemas"]["Event"]
    assert event["required"] == ["schema", "site", "changes"]


def test_documented_statuses_are_the_ones_returned(app, client):
    """Every status the refusal tests produce is documented for its route."""
    paths = client.get("/openapi.json").json["paths"]
    assert {"202", "400", "401", "403", "409", "413", "503"} <= set(paths["/v1/events/wordpress"]["post"]["responses"])
    assert {"202", "400", "401", "403", "413"} <= set(paths["/v1/webhook"]["post"]["responses"])
    assert {"200", "202", "400", "401", "403", "502"} <= set(paths["/v1/purge"]["post"]["responses"])


def test_secrets_never_logged(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    send_event(client)
    send_event(client, secret="wrong")
    hook(client, {"urls": ["https://blog.example.test/a/"]})
    hook(client, {"urls": ["https://blog.example.test/a/"]}, token=ADMIN_TOKEN)
    admin(client, {"urls": ["https://blog.example.test/a/"]}, token=WEBHOOK_TOKEN)
    client.get("/v1/status", headers=bearer(ADMIN_TOKEN))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused" in text and "accepted" in text
    for secret in (SECRET, WEBHOOK_TOKEN, ADMIN_TOKEN):
        assert secret not in text


def test_unknown_route_is_json_404(client):
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and response.json["status"] == 404


def test_log_setup_is_json_and_redacts_secrets():
    from purgebridge.telemetry.logs import setup_logging

    stream = io.StringIO()
    handler = setup_logging("json", secrets=[SECRET, ADMIN_TOKEN], stream=stream)
    try:
        logging.getLogger("purgebridge.test").warning("oops %s and %s", SECRET, "fine", extra={"node": "n1"})
        try:
            raise ValueError(f"token {ADMIN_TOKEN}")
        except ValueError:
            logging.getLogger("purgebridge.test").exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["msg"] == "oops *** and fine" and lines[0]["node"] == "n1" and lines[0]["level"] == "warning"
    assert "***" in lines[1]["exc"] and ADMIN_TOKEN not in stream.getvalue() and SECRET not in stream.getvalue()


@pytest.mark.parametrize("case", ["accepted", "wrong secret", "bad json", "other site", "replay", "too large"])
def test_signed_event_entry_answers_every_case_in_json(tmp_path, case):
    """The one entry for signed events (plain WSGI): status, JSON body and content type for each outcome."""
    app = create_app(app_overrides(tmp_path), environ={})
    client = app.test_client()
    raw = encode(event_body())
    headers = signed_headers(raw)
    if case == "wrong secret":
        headers = signed_headers(raw, secret="nope")
    elif case == "bad json":
        raw = b"{nope"
        headers = signed_headers(raw)
    elif case == "other site":
        raw = encode(event_body([post_change(site="https://evil.example.test")], site="https://evil.example.test"))
        headers = signed_headers(raw)
    elif case == "too large":
        raw = b"{" + b" " * MAX_BODY + b"}"
        headers = signed_headers(raw)
    try:
        response = client.post("/v1/events/wordpress", data=raw, headers=headers)
        if case == "replay":
            response = client.post("/v1/events/wordpress", data=raw, headers=headers)
        payload = json.loads(response.get_data())
    finally:
        app.extensions["purgebridge"].close()
    status = {"accepted": 202, "wrong secret": 401, "bad json": 400, "other site": 403, "replay": 409,
              "too large": 413}[case]
    assert (response.status_code, response.headers.get("Content-Type")) == (status, "application/json")
    if status == 202:
        assert set(payload) == {"event_id", "queued", "nodes"}, payload
    else:
        assert set(payload) <= {"error", "field"} and payload["error"], payload


def test_metrics_show_journal_events_not_yet_expanded(app, client):
    send_event(client)
    text = client.get("/metrics").get_data(as_text=True)
    assert "purgebridge_journal_pending 1.0" in text
    expanded(app)
    assert "purgebridge_journal_pending 0.0" in client.get("/metrics").get_data(as_text=True)


# --- explicit URLs (kind "urls": "Purge this page", "Purge URL", wp purgebridge purge) ---------------------

def explicit(urls=(), keys=(), **extra):
    return dict({"kind": "urls", "action": "purge", "urls": list(urls), "keys": list(keys)}, **extra)


def test_explicit_urls_purge_only_those_urls(app, client):
    body = event_body([explicit([f"{SITE}/about/", f"{SITE}/2026/11/26/post-42/"], ["post-42"])])
    assert send_event(client, body=body).status_code == 202
    items = targets(app)
    assert {i["label"] for i in items if i["method"] == "PURGE"} == {f"{SITE}/about/",
                                                                     f"{SITE}/2026/11/26/post-42/"}
    assert [i["method"] for i in items if i["method"] != "PURGE"] == ["PURGEKEYS"]


@pytest.mark.parametrize("change,field", [
    (explicit(["https://other.example.test/about/"]), "changes[0].urls[0]"),
    (explicit([f"{SITE}/ok/", "http://127.0.0.1:8080/x/"]), "changes[0].urls[1]"),  # configured, but not this site
    (explicit([f"{SITE}/ok/", "https://blog.example.test.evil.test/"]), "changes[0].urls[1]"),
    (explicit(["javascript:alert(1)"]), "changes[0].urls[0]"),
    (explicit(), "changes[0].urls"),
    (explicit(keys=["a b"]), "changes[0].keys[0]"),
    ({"kind": "urls", "action": "purge", "urls": f"{SITE}/"}, "changes[0].urls"),
    ({"kind": "urls", "action": "ban", "urls": [f"{SITE}/"]}, "changes[0].action"),
])
def test_explicit_urls_only_on_the_events_site(app, client, change, field):
    refused(send_event(client, body=event_body([change])), 400, app, field=field)


def test_explicit_urls_under_a_sites_home_path(app, client):
    outside = event_body([explicit([f"{SITE}/blogroll/"])], site=f"{SITE}/blog")
    refused(send_event(client, body=outside), 400, app, field="changes[0].urls[0]")
    body = event_body([explicit([f"{SITE}/blog/a/", f"{SITE}/blog"])], site=f"{SITE}/blog")
    assert send_event(client, body=body).status_code == 202
