"""Live CMS tests: a real CMS on loopback, the real relay, three real varnishd, and the audit as the oracle.

    CMS (its own webhook / frontend cache, configured through its own admin API)
        --> purgebridge serve --> PURGE / BAN / PURGEKEYS --> 3 x varnishd (vcl/wordpress.vcl)
                                                                   | backend: the CMS's site
Each step warms every page of the site on every node, edits the CMS the way
its admin screens do, and then checks with the project's audit
(``purgebridge.audit``) that every page is fresh on every node: a node's
cached copy equals what the origin serves now. A CMS that is not installed
fails with the install command (``.ci/setup-cms``), never skips.
"""

import contextlib
import json
from pathlib import Path
import time

import pytest

from purgebridge.audit import compare as audit
from purgebridge.config.settings import load_settings
from purgebridge.testing import RelayProcess, localcluster

import instances

REPO = Path(__file__).resolve().parents[2]
FRESH_TIMEOUT = 45.0  # seconds for a CMS's webhooks to arrive and be purged (Ghost sends them a moment later)


class CMSOrigin:
    """What localcluster.start_cluster needs of an origin: where the nodes fetch from (the CMS owns the process)."""

    def __init__(self, host, port):
        self.host, self.port = host, port

    def stop(self):
        pass


@contextlib.contextmanager
def cms_cluster(port, workdir):
    """Three varnishd on 127.0.0.11-13 in front of the site served on 127.0.0.1:``port``."""
    if not localcluster.find_varnishd():
        pytest.fail(localcluster.varnishd_missing_message(), pytrace=False)
    vcl = REPO / "vcl" / "wordpress.vcl"
    with localcluster.start_cluster(vcl, origin=CMSOrigin("127.0.0.1", port), workdir=workdir) as cluster:
        yield cluster


def cms_relay(workdir, cluster, sites, env=None, port=None):
    """``purgebridge serve`` with a sites file (``{"sites": [...]}``) and no WordPress secret."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sites_file = workdir / "sites.json"
    sites_file.write_text(json.dumps({"sites": sites}))
    settings = {"PURGEBRIDGE_NODES": cluster.nodes_env(), "PURGEBRIDGE_SITES_FILE": str(sites_file),
                "PURGEBRIDGE_TIMEOUT": "1", "PURGEBRIDGE_BACKOFF": "0.05", "PURGEBRIDGE_BACKOFF_MAX": "0.5",
                "PURGEBRIDGE_LOG_FORMAT": "text"}
    settings.update(env or {})
    return RelayProcess(workdir, port=port, env=settings, admin_token="cms-live-admin-token-0123456789")


def audit_problems(cluster, host, origin_port, paths, scheme="http"):
    """The audit over ``paths`` of ``host``: every node against the origin. Returns the problems as text."""
    settings = load_settings({"PURGEBRIDGE_NODES": cluster.nodes_env(), "PURGEBRIDGE_ORIGIN": f"127.0.0.1:{origin_port}",
                              "PURGEBRIDGE_TIMEOUT": "10"}, environ={}, dotenv_path="")
    auditor = audit.Auditor(settings, audit.resolve_origin(settings), rate=1000, concurrency=3)
    try:
        report = auditor.run([f"{scheme}://{host}{p}" for p in paths])
    finally:
        auditor.close()
    return [f"{c.state.value} {c.node} {c.url}: {c.detail}" for c in report.problems()]


def warm(cluster, host, paths, must_hit=()):
    """Every path fetched through every node, so each node holds a copy that a missed purge would leave stale.

    ``must_hit``: paths that must now be cached on every node when the origin
    serves them (200): else the audit would pass for nothing, since an
    uncached page is never stale.
    """
    statuses = {}
    for node in cluster.nodes:
        for path in paths:
            statuses[path] = node.get(path, host)[0]  # a 404 is cached too (and must be purged when it changes)
    missing = [(node.name, p) for p in must_hit if statuses.get(p) == 200 for node in cluster.nodes
               if localcluster.xcache(node, p, host) != "HIT"]
    assert missing == [], f"not cached after warming: {missing}"


def cached_on_every_node(cluster, host, path):
    return all(localcluster.xcache(node, path, host) == "HIT" for node in cluster.nodes)


def assert_fresh(relay, cluster, host, origin_port, paths, timeout=FRESH_TIMEOUT):
    """Every path is fresh on every node within ``timeout`` (the CMS's requests reach the relay, which purges)."""
    deadline = time.monotonic() + timeout
    problems = []
    while time.monotonic() < deadline:
        relay.drained(timeout=30)
        problems = audit_problems(cluster, host, origin_port, paths)
        if not problems:
            return
        time.sleep(1.0)
    assert not problems, f"stale after {timeout:.0f} s:\n" + "\n".join(problems[:12]) + f"\nrelay log:\n{relay.log()[-1500:]}"


def require_or_fail(cms):
    try:
        instances.require(cms)
    except instances.CMSError as exc:
        pytest.fail(str(exc), pytrace=False)
