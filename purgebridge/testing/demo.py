"""``purgebridge demo``: watch one purge reach every Varnish node, on this machine.

Starts a small origin and three real varnishd nodes on 127.0.0.11-13
(:mod:`purgebridge.testing.cluster`), caches five pages on every node, purges two
of them with the same fan-out ``purgebridge purge`` uses, and shows that the
purged pages are now a MISS on every node while the others are still a HIT.
The exit status says whether that is what actually happened, so the demo is
also a smoke test of an installation.
"""

import contextlib
import http.client
import logging
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from purgebridge.testing import cluster as localcluster

log = logging.getLogger(__name__)

SITE = "demo.purgebridge.test"
PAGES = ("/", "/hello-world/", "/about/", "/blog/", "/blog/page/2/")
PURGED = ("/hello-world/", "/blog/")
PREFERRED_PORT = 6081


def _grid(cluster, statuses):
    """Page x node table of HIT/MISS values from ``{(node name, path): status}``."""
    names = [n.name for n in cluster.nodes]
    width = max(len(p) for p in PAGES)
    lines = ["  " + "page".ljust(width) + "  " + "  ".join(n.ljust(18) for n in names)]
    for path in PAGES:
        cells = [str(statuses.get((name, path))).ljust(18) for name in names]
        lines.append("  " + path.ljust(width) + "  " + "  ".join(cells))
    return "\n".join(lines)


def _check(cluster):
    return {(node.name, path): localcluster.xcache(node, path, SITE)
            for node in cluster.nodes for path in PAGES}


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def _wait_for_ctrl_c(echo):
    """Block until Ctrl-C (or SIGTERM, when we own the main thread)."""
    echo("\nThe nodes keep running. Press Ctrl-C to stop them.")
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        echo("\nstopping...")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _start_relay(cluster, workdir, echo):
    """Run the relay (``python -m purgebridge.service.server``) against the demo nodes.

    It gets a fresh random secret and admin token, written to a 0600 file in
    the demo's temporary directory (deleted when the demo stops) rather than
    printed, so nothing secret ends up in a terminal log.
    """
    import secrets

    port = localcluster.free_port(["127.0.0.1"])
    relay_env = {
        "PURGEBRIDGE_NODES": cluster.nodes_env(),
        "PURGEBRIDGE_LISTEN": f"127.0.0.1:{port}",
        "PURGEBRIDGE_SECRET": secrets.token_hex(16),
        "PURGEBRIDGE_ADMIN_TOKEN": secrets.token_hex(16),
        "PURGEBRIDGE_SITES": SITE,
        "PURGEBRIDGE_QUEUE": os.path.join(workdir, "queue.sqlite3"),
        "PURGEBRIDGE_LOG_FORMAT": "text",
    }
    env_file = os.path.join(workdir, "relay.env")
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{name}={value}\n" for name, value in relay_env.items())
    log_path = os.path.join(workdir, "relay.log")
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "purgebridge.service.server"], env=dict(os.environ, **relay_env),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as fh:
                tail = fh.read()[-2000:]
            echo(f"relay did not start (exit status {proc.returncode}):\n{tail}")
            return None
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
            finally:
                conn.close()
            if status != 200:
                echo(f"relay answered /healthz with {status}; see {log_path}")
                _stop_relay(proc)
                return None
            echo(f"\nrelay listening on http://127.0.0.1:{port} for site {SITE}")
            echo(f"  its settings, including a fresh secret and admin token: {env_file}")
            echo(f"  its log: {log_path}")
            return proc
        time.sleep(0.1)
    _stop_relay(proc)
    echo("relay did not start listening within 15 s")
    return None


def _stop_relay(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def run_demo(echo, keep_running=False, relay=False, vcl=None):
    """Run the demo, printing with ``echo``; 0 when every node behaved as expected, else 1.

    ``vcl`` defaults to :func:`purgebridge.testing.cluster.default_vcl_path`.
    """
    from purgebridge.config.settings import load_settings
    from purgebridge.core.invalidation import purge_for_url
    from purgebridge.delivery.fanout import fan_out

    if not localcluster.find_varnishd():
        echo("error: " + localcluster.varnishd_missing_message())
        return 1
    hosts = localcluster.DEFAULT_HOSTS
    vcl = vcl or localcluster.default_vcl_path()
    workdir = tempfile.mkdtemp(prefix="purgebridge-demo-")
    echo(f"Starting an origin and {len(hosts)} varnishd nodes on {', '.join(hosts)} (VCL: {vcl}) ...")
    try:
        port = localcluster.free_port(hosts, preferred=PREFERRED_PORT)
        cluster = localcluster.start_cluster(vcl, hosts=hosts, port=port, workdir=workdir)
    except localcluster.LocalClusterError as exc:
        echo(f"error: {exc}")
        return 1
    relay_proc = None
    try:
        echo(f"origin {cluster.origin.url}; nodes {cluster.nodes_env()}\n")
        cluster.warm(PAGES, SITE)
        before = _check(cluster)
        echo(f"1. Cached {len(PAGES)} pages of http://{SITE} on every node:")
        echo(_grid(cluster, before))
        cached_ok = all(v == "HIT" for v in before.values())

        settings = load_settings(overrides={"PURGEBRIDGE_NODES": cluster.nodes_env()},
                                 environ={}, dotenv_path="")
        items = [purge_for_url(f"http://{SITE}{path}", settings.proto_header) for path in PURGED]
        echo(f"\n2. Purging {', '.join(PURGED)} on every node (the fan-out `purgebridge purge` uses):")
        report = fan_out(settings.nodes, items, settings)
        echo(report.table())

        after = _check(cluster)
        echo("\n3. The same pages now (purged ones should be MISS everywhere, the rest HIT):")
        echo(_grid(cluster, after))
        expected = {(n.name, p): ("MISS" if p in PURGED else "HIT") for n in cluster.nodes for p in PAGES}
        wrong = sorted(k for k, v in expected.items() if after.get(k) != v)

        echo("\nTry it yourself:")
        echo(f"  export PURGEBRIDGE_NODES={cluster.nodes_env()}")
        echo("  purgebridge nodes")
        echo(f"  curl -sI -H 'Host: {SITE}' {cluster.nodes[0].url}/about/ | grep X-Cache")
        echo(f"  purgebridge purge http://{SITE}/about/")

        ok = cached_ok and report.ok and not wrong
        if not cached_ok:
            echo("\nproblem: not every page was a HIT after warming the cache")
        if wrong:
            echo("\nproblem: unexpected cache state for " +
                 ", ".join(f"{node} {path} ({after.get((node, path))})" for node, path in wrong))
        if ok:
            echo("\nOK: the purge reached every node; unrelated pages stayed cached.")

        if relay:
            relay_proc = _start_relay(cluster, workdir, echo)
            ok = ok and relay_proc is not None
        if keep_running:
            _wait_for_ctrl_c(echo)
        return 0 if ok else 1
    except (localcluster.LocalClusterError, OSError) as exc:
        echo(f"error: {exc}")
        return 1
    finally:
        _stop_relay(relay_proc)
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
