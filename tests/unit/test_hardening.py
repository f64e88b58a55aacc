"""Issue 13 (hardening), through the Flask test client: tenants stay apart, replays stay out, bad input is a 400.

Each test here failed on the code before the issue was fixed; the slow-client
tests against the real server are in tests/integration/test_slow_clients.py.
"""

import json
import logging
import time

import pytest

from fixtures.app import SECRET, app_overrides, bearer, encode, event_body, post_change, send_event, signed_headers
from purgebridge.api.app import create_app
from fixtures.app import admin, assert_nothing_queued, hook, refused


# --- item 2: tenant isolation ---------------------------------------------------------

@pytest.fixture
def tenants(tmp_path):
    """blog.example.test has its own secret; 127.0.0.1:8080 uses the global one."""
    sites = tmp_path / "sites.json"
    sites.write_text(json.dumps({"sites": [{"host": "blog.example.test", "secret": "blog-own-secret-0123456789"},
                                           {"host": "127.0.0.1:8080"}]}))
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_SITES="", PURGEBRIDGE_SITES_FILE=str(sites)), environ={})
    yield app
    app.extensions["purgebridge"].close()


def test_a_site_with_its_own_secret_refuses_the_global_one(tenants):
    client = tenants.test_client()
    purge_all = event_body([{"kind": "site", "action": "purge_all"}])
    refused(send_event(client, body=purge_all, secret=SECRET), 401, tenants)
    assert send_event(client, body=purge_all, secret="blog-own-secret-0123456789").status_code == 202


def test_a_site_without_its_own_secret_takes_the_global_one_only(tenants):
    client = tenants.test_client()
    body = event_body([post_change(site="http://127.0.0.1:8080")], site="http://127.0.0.1:8080")
    refused(send_event(client, body=body, secret="blog-own-secret-0123456789"), 401, tenants)
    assert send_event(client, body=body, secret=SECRET).status_code == 202


def test_one_hmac_per_request_whatever_the_number_of_secrets(tmp_path, monkeypatch):
    """1,000 per-site secrets: a forged request costs one HMAC, not 1,000."""
    from purgebridge.core import signing

    sites = tmp_path / "sites.json"
    sites.write_text(json.dumps({"sites": [{"host": f"s{i}.example.test", "secret": f"secret-number-{i:06d}"}
                                           for i in range(1000)] + [{"host": "blog.example.test"}]}))
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_SITES="", PURGEBRIDGE_SITES_FILE=str(sites)), environ={})
    raw = encode(event_body())
    headers = signed_headers(raw, secret="forged-secret-forged")
    calls = []
    real = signing.sign
    monkeypatch.setattr(signing, "sign", lambda *args: calls.append(1) or real(*args))
    try:
        refused(app.test_client().post("/v1/events/wordpress", data=raw, headers=headers), 401, app)
        assert len(calls) == 1
    finally:
        app.extensions["purgebridge"].close()


# --- item 3: replay window ----------------------------------------------------------

def test_a_timestamp_far_ahead_is_refused(app, client):
    """A timestamp 200 s ahead was accepted, and accepted again once the cache forgot it 300 s later."""
    body = refused(send_event(client, timestamp=int(time.time()) + 200), 401, app)
    assert "ahead" in body["error"]


# --- item 4: 400, never 500 or a silent drop ------------------------------------------

def _event_with(**post):
    return event_body([post_change(**post)])


@pytest.mark.parametrize("raw,field", [
    (b'{"schema": 1, "site": "https://blog.example.test\\ud800/", "changes": []}', "body"),
    (json.dumps(event_body(site="https://blog\u0085example.test")).encode(), "site"),
    (b"[" * 100_000 + b"]" * 100_000, "body"),
    (b'{"schema": 1, "sent_at": ' + b"9" * 5000 + b"}", "body"),
    (json.dumps(_event_with(rest_base="po\ud800sts"), ensure_ascii=True).encode(), "body"),
    (encode(_event_with(rest_base="../../wp-admin")), "changes[0].post.rest_base"),
    (encode(_event_with(type="post type")), "changes[0].post.type"),
    (encode(event_body([dict(post_change(), kind="term", term={"id": 1, "taxonomy": "cat\u0085"})])),
     "changes[0].term.taxonomy"),
    (encode(_event_with(url_new="https://blog.example.test/" + "a" * 40_000)), "changes[0].post.url_new"),
    (encode(_event_with(url_new="https://blog.example.test/" + "\u00e9" * 3000)), "changes[0].post.url_new"),
    (encode(event_body([{"kind": "site", "action": "explode"}])), "changes[0].action"),
    (encode(_event_with(id=-1)), "changes[0].post.id"),
])
def test_bad_fields_of_a_signed_event_are_400(app, client, raw, field):
    response = client.post("/v1/events/wordpress", data=raw, headers=signed_headers(raw))
    body = refused(response, 400, app)
    assert body.get("field") == field, body


@pytest.mark.parametrize("payload,field", [
    ({"urls": ["https://blog\u0085.example.test/"]}, "urls[0]"),
    ({"urls": ["https://\udcff.example.test/"]}, "body"),  # sent as a lone surrogate escape
    ({"urls": ["https://ex\u2028.example.test/"]}, "urls[0]"),  # no valid IDN label
    ({"urls": ["https://" + "\u00e9" * 70 + ".test/"]}, "urls[0]"),  # no valid IDN label
    ({"site": "evil/..", "keys": ["post-1"]}, "site"),
    ({"content": {"url": "https://blog.example.test/" + "x" * 9000}}, "content.url"),
    ({"urls": "https://blog.example.test/"}, "urls"),
])
def test_bad_webhook_fields_are_400(app, client, payload, field):
    raw = json.dumps(payload).encode()
    response = client.post("/v1/webhook", data=raw, headers=dict(bearer("webhook-token-4d1a"),
                                                                  **{"Content-Type": "application/json"}))
    body = refused(response, 400, app)
    assert body.get("field") == field, body


@pytest.mark.parametrize("ban", ["^/caf\u00e9", "^/a\x01b", "^/x" + "y" * 5000, "("])
def test_admin_ban_varnish_cannot_take_is_400(app, client, ban):
    refused(admin(client, {"site": "blog.example.test", "ban": ban}), 400, app, field="ban")


def test_admin_purge_all_with_a_path_in_the_host_is_400(app, client):
    refused(admin(client, {"site": "blog.example.test/..", "purge_all": True}), 400, app, field="site")


def test_the_openapi_document_has_the_ping_action_and_requires_post_id(client):
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    assert "ping" in schemas["SiteChange"]["properties"]["action"]["enum"]
    assert "id" in schemas["Post"]["required"]


def test_refusals_are_logged_at_a_bounded_rate(app, client, caplog, monkeypatch):
    """Item 5: a flood of bad requests does not flood the log (33,000 lines in 30 s before)."""
    from purgebridge.api.refusals import refusal_log

    now = [1000.0]
    monkeypatch.setattr(refusal_log, "clock", lambda: now[0])
    monkeypatch.setattr(refusal_log, "stamp", now[0])
    monkeypatch.setattr(refusal_log, "tokens", float(refusal_log.burst))
    monkeypatch.setattr(refusal_log, "dropped", 0)
    caplog.set_level(logging.INFO, logger="purgebridge")
    for _ in range(300):
        send_event(client, secret="wrong-secret-wrong")
    hook(client, {"urls": ["https://evil.example.test/"]})
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == refusal_log.burst
    now[0] += 1.0  # a second later the budget allows a few lines again; the first one counts the rest
    send_event(client, secret="wrong-secret-wrong")
    last = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()][-1]
    assert "and 281 more refusal(s) not logged" in last
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'purgebridge_events_total{result="401",route="wordpress_event"} 301.0' in metrics
    assert_nothing_queued(app)


# --- item 4: the CLI answers bad input with one line, never a traceback -------------------

@pytest.mark.parametrize("args,env,names", [
    (["purge", "https://ex\u2028.test/"], {}, "international domain name"),
    (["ban", "--host", "blog.example.test", "^/caf\u00e9"], {}, "printable ASCII"),
    (["purge", "https://blog.example.test/"], {"PURGEBRIDGE_TIMEOUT": "inf"}, "PURGEBRIDGE_TIMEOUT"),
    (["purge", "--all", "--host", "evil/.."], {}, "not a valid host"),
    (["purge", "--key", "post-1", "--host", "evil/.."], {}, "not a valid host"),
    (["purge", "https://blog.example.test/" + "a" * 9000], {}, "longer than"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, env, names):
    import os
    import subprocess
    import sys

    environ = dict(os.environ, PURGEBRIDGE_NODES="127.0.0.1:9", **env)
    done = subprocess.run([sys.executable, "-m", "purgebridge", *args], capture_output=True, text=True,
                          env=environ, cwd=tmp_path, timeout=30)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert names in done.stderr and "nothing was sent" in done.stderr or "PURGEBRIDGE_" in done.stderr


# --- item 5: weak configuration, readiness off the request thread ---------------------------

@pytest.mark.parametrize("values,says", [
    ({"PURGEBRIDGE_SECRET": "change-me"}, "PURGEBRIDGE_SECRET='(hidden)': too short"),
    ({"PURGEBRIDGE_ADMIN_TOKEN": "admin-token"}, "PURGEBRIDGE_ADMIN_TOKEN='(hidden)': too short"),
    ({"PURGEBRIDGE_WEBHOOK_TOKEN": "relay-test-secret-8f2c"}, "same value as PURGEBRIDGE_SECRET"),
    ({"PURGEBRIDGE_ADMIN_TOKEN": "webhook-token-4d1a"}, "same value as PURGEBRIDGE_WEBHOOK_TOKEN"),
])
def test_weak_credentials_are_refused_before_serving(tmp_path, values, says):
    from purgebridge.config.settings import load_settings
    from purgebridge.core.errors import ConfigError
    from purgebridge.service.server import check_can_serve
    from purgebridge.config.sites import load_sites

    settings = load_settings(app_overrides(tmp_path, **values), environ={}, dotenv_path="")
    with pytest.raises(ConfigError) as info:
        check_can_serve(settings, load_sites(settings, environ={}))
    assert says in str(info.value)
    assert values.popitem()[1] not in str(info.value)  # the secret itself is never shown


def test_a_site_secret_equal_to_a_token_is_refused(tmp_path):
    from purgebridge.config.settings import load_settings
    from purgebridge.core.errors import ConfigError
    from purgebridge.service.server import check_can_serve
    from purgebridge.config.sites import load_sites

    sites = tmp_path / "sites.json"
    sites.write_text(json.dumps({"sites": [{"host": "shop.example.test", "secret": "admin-token-91be"}]}))
    settings = load_settings(app_overrides(tmp_path, PURGEBRIDGE_SITES_FILE=str(sites)), environ={}, dotenv_path="")
    with pytest.raises(ConfigError, match="same value as PURGEBRIDGE_ADMIN_TOKEN"):
        check_can_serve(settings, load_sites(settings, environ={}))
    check_can_serve(load_settings(app_overrides(tmp_path), environ={}, dotenv_path=""),
                    load_sites(load_settings(app_overrides(tmp_path), environ={}, dotenv_path=""), environ={}))


@pytest.fixture
def blackhole():
    """A loopback port whose accept queue is full: a connect to it hangs until its timeout."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        fillers.append(filler)
    time.sleep(0.05)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(server.getsockname())
        pytest.fail("the blackhole accepted a connection: this kernel does not drop SYNs on a full queue")
    except OSError:
        pass
    finally:
        probe.close()
    yield server.getsockname()[1]
    for sock in fillers + [server]:
        sock.close()


def test_readyz_never_waits_for_a_node_on_the_request_thread(tmp_path, blackhole):
    """16 probes with an unreachable node: each answer comes at once (before: a 0.5-1 s connect per probe)."""
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_NODES=f"127.0.0.1:{blackhole}"), environ={})
    try:
        client = app.test_client()
        started = time.monotonic()
        answers = [client.get("/readyz") for _ in range(16)]
        assert time.monotonic() - started < 0.3
        assert {a.status_code for a in answers} == {503}
        stop = time.monotonic() + 10
        while "no node reachable" not in client.get("/readyz").json["problems"]:
            assert time.monotonic() < stop, "the background check never finished a round"
            time.sleep(0.05)
    finally:
        app.extensions["purgebridge"].close()


# --- item 6: the relay's Host spelling is the one vcl/ normalises to -------------------------

@pytest.mark.parametrize("url", ["http://Blog.Example.Test./x", "http://blog.example.test.:80/x",
                                 "http://blog.example.test/x"])
def test_relay_purges_use_the_normalised_host(url):
    from purgebridge.core.invalidation import purge_for_url

    assert purge_for_url(url).host == "blog.example.test"
