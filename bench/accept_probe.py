"""How many signed WordPress events per second ``purgebridge serve`` accepts (202, durably queued).

Not a test and not the published benchmark (that is bench/relay.py): a probe
to tune the accept path. It starts ``python -m purgebridge serve`` on
127.0.0.1 with a temporary queue file, pre-signs N events with unique bodies
(one post change each, about 40 URLs once mapped) and posts them over C
keep-alive connections, ``depth`` requests pipelined per connection, using
the relay's own pipelined client (``transport.Connection.exchange``) so the
client side costs little CPU on this shared 2-core machine.

Nodes: by default three addresses on 127.0.0.x with a port nothing listens
on (deliveries fail and back off -- irrelevant for accepting); ``--varnish``
starts three real varnishd with ``localcluster.start_cluster`` instead.

After the burst it waits until the journal is expanded (``journal_pending``
in /v1/status is 0) and prints that time too, then stops the relay with
SIGTERM. ``--py-spy FILE`` records where the relay holds the GIL during the
burst in the API process (``pip install py-spy``; collapsed stacks). The
relay is started with ``purgebridge.testing.RelayProcess``, as in the tests.
Usage::

    python bench/accept_probe.py [--events 3000] [--connections 8] [--depth 1] [--rounds 3] [--varnish]
"""

import argparse
import json
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from purgebridge.core import signing  # noqa: E402
from purgebridge.testing import RelayProcess  # noqa: E402
from purgebridge.delivery.transport import Connection  # noqa: E402

SECRET = "accept-probe-secret-2b9e"
ADMIN = "accept-probe-admin-61c4"
SITE = "blog.example.test"


def free_port(host="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def change(post_id):
    base = f"https://{SITE}"
    category = f"topic-{post_id % 7}"
    return {"kind": "post", "action": "update", "post": {
        "id": post_id, "type": "post", "rest_base": "posts", "status_old": "publish", "status_new": "publish",
        "url_old": f"{base}/2026/11/26/post-{post_id}/", "url_new": f"{base}/2026/11/26/post-{post_id}/",
        "date_old": "2026-11-26", "date_new": "2026-11-26",
        "author": {"id": 1 + post_id % 3, "url": f"{base}/author/writer-{post_id % 3}/"},
        "terms_old": [], "terms_new": [
            {"id": 3 + post_id % 7, "taxonomy": "category", "rest_base": "categories",
             "url": f"{base}/category/{category}/"},
            {"id": 100 + post_id % 11, "taxonomy": "post_tag", "rest_base": "tags",
             "url": f"{base}/tag/tag-{post_id % 11}/"}],
        "type_archive_url": None}}


def encoded_events(count, port):
    """``count`` pre-signed POST requests with distinct bodies (distinct signatures)."""
    timestamp = str(int(time.time()))
    requests = []
    for index in range(count):
        body = json.dumps({"schema": 1, "site": f"https://{SITE}/", "sent_at": int(timestamp),
                           "changes": [change(1000 + index)]}, separators=(",", ":")).encode()
        head = (f"POST /v1/events/wordpress HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"X-Purgebridge-Timestamp: {timestamp}\r\n"
                f"X-Purgebridge-Signature: {signing.sign(SECRET, timestamp, body)}\r\n\r\n")
        requests.append(head.encode("latin-1") + body)
    return requests


def get_json(port, path, timeout=5.0):
    import requests

    response = requests.get(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {ADMIN}"},
                            timeout=timeout)
    return response.status_code, response.json()


def start_relay(workdir, nodes, port):
    return RelayProcess(workdir, port, {"PURGEBRIDGE_NODES": nodes, "PURGEBRIDGE_SITES": SITE,
                                        "PURGEBRIDGE_SECRET": SECRET, "PURGEBRIDGE_TIMEOUT": "1",
                                        "PURGEBRIDGE_LOG_FORMAT": "json"}, ADMIN).start()


def post_all(port, requests, connections, depth):
    """Post every request; returns (seconds, {status: count})."""
    slices = [requests[i::connections] for i in range(connections)]
    statuses, errors = {}, []
    lock = threading.Lock()
    barrier = threading.Barrier(connections + 1)

    def run(part):
        conn = Connection("127.0.0.1", port, timeout=30.0)
        try:
            conn.open()
            barrier.wait(timeout=30)
            done = 0
            while done < len(part):  # reconnect if the server closed a connection mid-way
                responses, error = conn.exchange(part[done:], depth)
                with lock:
                    for response in responses:
                        statuses[response.status] = statuses.get(response.status, 0) + 1
                done += len(responses)
                if error is not None:
                    with lock:
                        errors.append(str(error))
                    if not responses:
                        break
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(part,)) for part in slices]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=30)
    started = time.perf_counter()
    for thread in threads:
        thread.join(timeout=300)
    elapsed = time.perf_counter() - started
    if errors:
        print(f"transport errors: {errors[:5]}", file=sys.stderr)
    return elapsed, statuses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--depth", type=int, default=1,
                        help="pipelined requests per connection (waitress answers a pipelined request only "
                             "after the next one on that connection finished, so depth > 1 does not help)")
    parser.add_argument("--rounds", type=int, default=1, help="bursts of --events each, fresh relay each time")
    parser.add_argument("--varnish", action="store_true", help="three real varnishd nodes instead of dead ports")
    parser.add_argument("--py-spy", metavar="FILE", help="record the relay with py-spy (collapsed stacks) during the burst")
    args = parser.parse_args(argv)
    if not 1 <= args.events <= 100_000 or not 1 <= args.connections <= 64 or not 1 <= args.depth <= 16:
        raise SystemExit("events 1..100000, connections 1..64, depth 1..16")
    cluster = None
    if args.varnish:
        from purgebridge.testing.cluster import start_cluster

        cluster = start_cluster()
        nodes = cluster.nodes_env()
    else:
        nodes = ",".join(f"127.0.0.{n}:{free_port()}" for n in (21, 22, 23))  # nothing listens there
    rates = []
    try:
        for round_number in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="purgebridge-accept-") as tmp:
                workdir = pathlib.Path(tmp)
                port = free_port()
                relay = start_relay(workdir, nodes, port)
                try:
                    requests = encoded_events(args.events, port)
                    spy = None
                    if args.py_spy:
                        spy = subprocess.Popen(["py-spy", "record", "--pid", str(relay.api_pid()), "--format", "raw",
                                                "--threads", "--gil", "--rate", "250",
                                                "--output", args.py_spy], stdout=subprocess.DEVNULL)
                        time.sleep(1.0)
                    elapsed, statuses = post_all(port, requests, args.connections, args.depth)
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(timeout=30)
                    rate = statuses.get(202, 0) / elapsed
                    rates.append(rate)
                    print(f"round {round_number + 1}: {statuses.get(202, 0)} x 202 of {args.events} in "
                          f"{elapsed:.2f} s = {rate:.0f} events/s accepted "
                          f"({args.connections} connections x depth {args.depth}); statuses {statuses}")
                    started = time.perf_counter()
                    deadline = time.monotonic() + 120
                    status = {}
                    while time.monotonic() < deadline:
                        status = get_json(port, "/v1/status")[1]
                        if not status.get("queue", {}).get("journal_pending"):
                            break
                        time.sleep(0.05)
                    queue = status.get("queue", {})
                    print(f"  journal expanded {time.perf_counter() - started:.2f} s after the burst; "
                          f"queue {json.dumps(queue)}; totals {json.dumps(status.get('totals', {}))}")
                finally:
                    relay.stop()
                    code = relay.proc.returncode
                    if code != 0:
                        print(f"relay exit code {code}; log tail:\n"
                              f"{(workdir / 'relay.log').read_text()[-2000:]}", file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.stop()
    if len(rates) > 1:
        print(f"median of {len(rates)} rounds: {sorted(rates)[len(rates) // 2]:.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
