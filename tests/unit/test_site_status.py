"""``POST /v1/sites/status``: the per-site node truth the plugin asks for with its own secret.

In-process app and queue; the node states come from a real ``Worker`` whose
nodes are closed loopback ports (down) or whose answers a test injects.
"""

import json
import time

from purgebridge.api.app import create_app
from purgebridge.api.site_status import node_state
from purgebridge.core import signing
from purgebridge.delivery.fanout import Outcome, Result
from purgebridge.worker.worker import Worker

from fixtures.app import SECRET, app_overrides, send_event, event_body, post_change

A_SECRET, B_SECRET = "site-a-secret-1111", "site-b-secret-2222"


def ask(client, site, secret=SECRET, body=None, timestamp=None):
    raw = json.dumps(body if body is not None else {"site": site}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"X-Purgebridge-Timestamp": ts, "X-Purgebridge-Signature": signing.sign(secret, ts, raw),
               "Content-Type": "application/json"}
    return client.post("/v1/sites/status", data=raw, headers=headers)


def two_tenants(tmp_path):
    sites = tmp_path / "sites.json"
    sites.write_text(json.dumps({"sites": [{"host": "a.example.test", "secret": A_SECRET},
                                           {"host": "b.example.test", "secret": B_SECRET}]}))
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_SITES="", PURGEBRIDGE_SITES_FILE=str(sites)), environ={})
    return app


def test_wrong_secret_missing_headers_foreign_site_and_extra_fields_are_refused(tmp_path):
    app = two_tenants(tmp_path)
    client = app.test_client()
    assert ask(client, "https://a.example.test", secret=B_SECRET).status_code == 401  # b's secret for a
    assert client.post("/v1/sites/status", json={"site": "a.example.test"}).status_code == 401
    stale = ask(client, "https://a.example.test", secret=A_SECRET, timestamp=time.time() - 241)
    assert stale.status_code == 401
    other = ask(client, "https://c.example.test", secret=SECRET)
    assert other.status_code == 403  # signed with the global secret, but c is no site of this relay
    extra = ask(client, "a", secret=A_SECRET, body={"site": "https://a.example.test", "changes": []})
    assert extra.status_code == 400 and extra.json["field"] == "changes"
    fine = ask(client, "https://a.example.test", secret=A_SECRET)
    assert fine.status_code == 200, fine.json
    assert fine.json["site"] == "a.example.test"
    app.extensions["purgebridge"].close()


def test_a_site_sees_its_own_waiting_purges_never_another_tenants(tmp_path):
    """Both tenants have purges queued for the same down node: each answer counts only its own."""
    app = two_tenants(tmp_path)
    svc = app.extensions["purgebridge"]
    from purgebridge.core.invalidation import purge_for_url

    nodes = [n.name for n in svc.settings.nodes]
    svc.queue.enqueue(nodes, [purge_for_url(f"https://a.example.test/{i}/") for i in range(3)], "test",
                      site="a.example.test")
    svc.queue.enqueue(nodes, [purge_for_url(f"https://b.example.test/{i}/") for i in range(7)], "test",
                      site="b.example.test")
    client = app.test_client()
    a = ask(client, "https://a.example.test", secret=A_SECRET).json
    b = ask(client, "https://b.example.test", secret=B_SECRET).json
    assert [n["pending"] for n in a["nodes"]] == [3, 3]
    assert [n["pending"] for n in b["nodes"]] == [7, 7]
    assert "b.example.test" not in json.dumps(a) and "a.example.test" not in json.dumps(b)
    svc.close()


def test_down_node_is_waiting_since_it_went_down_and_the_other_delivered(tmp_path):
    """Node 1 answers 200, node 2 never answers: the site's rows wait for node 2, with its down_since."""
    app = create_app(app_overrides(tmp_path), environ={})
    svc = app.extensions["purgebridge"]
    first, second = svc.settings.nodes

    def deliver(node, items, settings, **kwargs):
        if node == first:
            return [Result(node, item, Outcome.PURGED, 200, "HTTP 200 Purged") for item in items]
        return [Result(node, item, Outcome.FAILED, None, "connection refused") for item in items]

    worker = Worker(svc.queue, svc.settings, deliver=deliver, poll=0.02)
    svc.worker = worker
    client = app.test_client()
    assert send_event(client, event_body([post_change(7)])).status_code == 202
    before = time.time()
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            report = ask(client, "https://blog.example.test").json
            if [n["state"] for n in report["nodes"]] == ["delivered", "waiting"]:
                break
            time.sleep(0.05)
        assert [n["state"] for n in report["nodes"]] == ["delivered", "waiting"], report
        down = report["nodes"][1]
        assert down["up"] is False and before - 1 <= down["down_since"] <= time.time()
        assert down["pending"] > 0 and down["last_error"] == "connection refused"
        assert report["summary"]["delivered"] == 1 and report["summary"]["waiting"] == 1
        assert report["relay"]["worker"] is True
    finally:
        worker.stop(5)
        svc.close()


def test_states_take_the_worst_that_applies():
    assert node_state({"up": True}, {}, 0) == "delivered"
    assert node_state({}, {}, 0) == "unknown"
    assert node_state({"up": False}, {}, 0) == "down"
    assert node_state({"up": True}, {}, 2) == "sending"
    assert node_state({"up": False}, {"pending": 3}, 0) == "waiting"
    assert node_state({"up": True}, {"pending": 3}, 0) == "sending"
    assert node_state({"up": True, "refusing": True}, {"dead": 1}, 0) == "refused"
    assert node_state({"up": True}, {"dead": 1, "dead_reason": "HTTP 405 Not allowed"}, 0) == "refused"
    assert node_state({"up": False}, {"dead": 1, "pending": 1, "dead_reason": "max age"}, 0) == "dead_lettered"
