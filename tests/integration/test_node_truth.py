"""What the relay tells about its nodes agrees with what the nodes received: CLI, logs, /metrics, per-site status.

One real relay (``purgebridge serve``) in front of five real nodes, each in
another state: two varnishd that purge, one varnishd that is stopped (down),
one varnishd whose acl refuses us (405), and one socket that accepts
connections and never answers (hung). Signed events go in; then the test
reads what an operator and a WordPress site would read and compares it with
the nodes' caches.
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import requests

from purgebridge.core import signing
from fixtures.relay import ADMIN, SECRET, Relay, change, event, eventually

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def hung_node():
    """A listening socket nobody accepts on: the kernel completes the handshake, no answer ever comes."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def cli(relay, *args, timeout=30):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")}
    env.update(PURGEBRIDGE_ADMIN_TOKEN=ADMIN, PURGEBRIDGE_VCL="")
    return subprocess.run([sys.executable, "-m", "purgebridge", *args, "--url", relay.url()], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=REPO)


def site_status(relay, site, secret=SECRET):
    raw = json.dumps({"site": f"http://{site}/"}).encode()
    ts = str(int(time.time()))
    return requests.post(relay.url("/v1/sites/status"), data=raw, timeout=10,
                         headers={"X-Purgebridge-Timestamp": ts, "X-Purgebridge-Signature": signing.sign(secret, ts, raw),
                                  "Content-Type": "application/json"})


def metric(relay, name, node):
    text = requests.get(relay.url("/metrics"), timeout=10).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{node="{node}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def log_lines(relay):
    lines = []
    for raw in relay.log_path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def test_every_fault_is_told_the_same_way_everywhere(cluster, refusing_node, hung_node, site, tmp_path):
    good, down, good2 = cluster.nodes
    nodes = [good.node.name, down.node.name, good2.node.name, refusing_node.node.name, hung_node]
    with Relay(tmp_path, ",".join(nodes), site) as relay:
        # A fresh relay has sent nothing: every node is unknown, which is not down (exit 0). Its worker
        # process reports within a fraction of a second; until then status says "worker starting", also exit 0.
        eventually(lambda: json.loads(cli(relay, "status", "--json").stdout or "{}").get("worker"), 30, "the worker")
        fresh = cli(relay, "status")
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        rows = [line for line in fresh.stdout.splitlines() if line.startswith("127.0.0.1")]
        assert len(rows) == 5 and all(" unknown " in row for row in rows), fresh.stdout
        assert "relay 0.1.0" in fresh.stdout and "worker running" in fresh.stdout
        assert "purgebridge_build_info{version=\"0.1.0\"} 1.0" in requests.get(relay.url("/metrics"), timeout=5).text
        assert metric(relay, "purgebridge_node_up", good.node.name) is None  # unknown: no sample, not 0

        down.stop()
        paths = ["/2026/11/26/post-1/", "/category/news/"]
        for vn in (good, good2):
            for path in paths:
                vn.get(path, site)
        assert relay.send(event(site, change(site, 1))).status_code == 202

        # The site's own view (its secret): delivered on the two good nodes, waiting on the down one since it
        # went down, refused on the 405 node; the hung node is waiting too once its request timed out.
        report = eventually(lambda: (r := site_status(relay, site).json()) and
                          [n["state"] for n in r["nodes"]] == ["delivered", "waiting", "delivered", "refused",
                                                               "waiting"] and r,
                          what="per-site states")
        by_node = {n["node"]: n for n in report["nodes"]}
        assert by_node[down.node.name]["down_since"] and by_node[down.node.name]["pending"] > 0
        assert by_node[refusing_node.node.name]["dead"] > 0
        assert by_node[refusing_node.node.name]["dead_reason"].startswith("HTTP 405")
        assert report["summary"]["delivered"] == 2 and report["summary"]["waiting"] == 2
        # ... which is what the caches say.
        for vn in (good, good2):
            assert [cluster.xcache(vn, p, site) for p in paths] == ["MISS", "MISS"], vn.name

        # The operator's view: status exits 3 (a node down) and names each state.
        told = cli(relay, "status")
        assert told.returncode == 3, told.stdout + told.stderr
        table = {line.split()[0]: line for line in told.stdout.splitlines() if line.startswith("127.0.0.1")}
        assert " down " in table[down.node.name] and " refusing " in table[refusing_node.node.name]
        assert " up " in table[good.node.name] and " down " in table[hung_node]
        assert f"node {down.node.name} is down since" in told.stdout
        # a node refusing everything also refuses PURGEKEYS: that says nothing about xkey in its VCL
        assert table[refusing_node.node.name].split()[7] == "?", table[refusing_node.node.name]
        assert by_node[refusing_node.node.name]["keys"] is None
        assert f"purgebridge queue retry --node {refusing_node.node.name}" in told.stdout
        verdict = json.loads(cli(relay, "status", "--json").stdout)["verdict"]
        assert verdict["exit"] == 3 and len(verdict["problems"]) >= 3

        # /metrics: up per node, and the oldest unconfirmed purge keeps ageing while a node is down or hung.
        assert metric(relay, "purgebridge_node_up", good.node.name) == 1.0
        assert metric(relay, "purgebridge_node_up", down.node.name) == 0.0
        assert metric(relay, "purgebridge_node_up", hung_node) == 0.0
        first = {n: metric(relay, "purgebridge_node_oldest_queued_seconds", n) for n in (down.node.name, hung_node)}
        time.sleep(2.5)
        later = {n: metric(relay, "purgebridge_node_oldest_queued_seconds", n) for n in (down.node.name, hung_node)}
        for name in first:
            assert later[name] >= first[name] + 2.0, (name, first, later)
        assert metric(relay, "purgebridge_node_oldest_queued_seconds", good.node.name) == 0.0

        # The log: the accepted event, the node going down (warning, with fields), the dead letters (error).
        lines = log_lines(relay)
        accepted = [x for x in lines if x.get("event_id") and x.get("source") == "wordpress"]
        assert len(accepted) == 1 and accepted[0]["site"] == site and accepted[0]["changes"] == 1
        went_down = [x for x in lines if x.get("state") == "down" and x.get("node") == down.node.name]
        assert len(went_down) == 1 and went_down[0]["level"] == "warning" and went_down[0]["down_since"]
        dead = [x for x in lines if x.get("dead_lettered") and x.get("node") == refusing_node.node.name]
        assert dead and all(x["level"] == "error" and x["sites"] == site for x in dead)

        # The node comes back: one "back up" warning, its purges delivered, the site sees it delivered.
        down.start()
        eventually(lambda: site_status(relay, site).json()["nodes"][1]["state"] == "delivered", what="node back")
        assert [cluster.xcache(down, p, site) for p in paths] == ["MISS", "MISS"]
        back = [x for x in log_lines(relay) if x.get("state") == "up" and x.get("node") == down.node.name]
        assert len(back) == 1 and back[0]["level"] == "warning" and back[0]["down_seconds"] > 0
        assert metric(relay, "purgebridge_node_up", down.node.name) == 1.0


def test_status_exit_4_for_dead_letters_and_one_line_when_the_relay_is_gone(cluster, refusing_node, site, tmp_path):
    nodes = [cluster.nodes[0].node.name, refusing_node.node.name]
    with Relay(tmp_path, ",".join(nodes), site) as relay:
        assert relay.send(event(site, change(site, 2))).status_code == 202
        eventually(lambda: relay.status()["queue"]["dead"] > 0, what="dead letters")
        told = cli(relay, "status")
        assert told.returncode == 4, told.stdout + told.stderr
        assert "refusing" in told.stdout and "dead letter" in told.stdout
        url = relay.url()
    gone = subprocess.run([sys.executable, "-m", "purgebridge", "status", "--url", url], capture_output=True,
                          text=True, timeout=30, cwd=REPO,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")},
                               "PURGEBRIDGE_ADMIN_TOKEN": ADMIN})
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.strip().splitlines() == [f"error: cannot reach the relay at {url}: connection refused "
                                                "(is purgebridge serve running, on this address?)"]


def test_purge_with_a_down_node_prints_one_line_per_distinct_failure(cluster, site):
    stopped = cluster.nodes[1]
    stopped.stop()
    urls = "".join(f"http://{site}/many/{i}/\n" for i in range(500))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")}
    env.update(PURGEBRIDGE_NODES=cluster.nodes_env(), PURGEBRIDGE_TIMEOUT="1", PURGEBRIDGE_RETRIES="0",
               PURGEBRIDGE_VCL="")
    result = subprocess.run([sys.executable, "-m", "purgebridge", "purge", "-"], input=urls, capture_output=True,
                            text=True, env=env, timeout=60, cwd=REPO)
    assert result.returncode == 1
    problems = result.stdout.split("not acknowledged:")[1].strip().splitlines()
    assert len(problems) == 1, result.stdout
    assert stopped.node.name in problems[0] and "failed: 500 requests" in problems[0] and "and 497 more" in problems[0]
