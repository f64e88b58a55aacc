"""Benchmark: PURGE throughput of the fan-out against a naive sender and a pipelined ceiling.

Not a test. Starts three varnishd nodes on 127.0.0.11-13 (purgebridge.testing.cluster),
then, in one run, sends the same 3,000 distinct URLs to every node with:

  (a) purgebridge's fan-out (purgebridge.delivery.fanout.fan_out, default settings)
  (b) a naive sender: one PURGE at a time on a new connection (requests), what
      WordPress purge plugins do; run on a bounded sample of URLs
  (c) a ceiling: a raw HTTP/1.1 sender per node that writes every request at
      once on one socket and only counts answers (no parsing, no bookkeeping)

and prints URL x node purges per second with ratios. Then, also in the same
run and interleaved:

  (d) ``purgebridge purge -`` as a whole process (interpreter start, reading
      30,000 URLs from stdin, checking them, sending, the report), timed from
      the outside, against (c) on the same 30,000 URLs

--write updates docs/benchmarks.md. Targets: (a) >= 0.5 x (c), >= 20 x (b),
(d) >= 0.8 x (c).

    python bench/fanout.py [--urls 3000] [--cli-urls 30000] [--rounds 3] [--write] [--note TEXT]
"""

import argparse
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import requests  # noqa: E402

from common import machine, write_section  # noqa: E402
from purgebridge.config.settings import load_settings  # noqa: E402
from purgebridge.core.invalidation import purge_for_url  # noqa: E402
from purgebridge.delivery.fanout import fan_out  # noqa: E402
from purgebridge.testing.cluster import start_cluster  # noqa: E402

HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
DEADLINE = 300  # seconds: the whole benchmark stops by itself


def urls(n):
    return [f"http://bench.example.test/2026/11/post-{i}/" for i in range(n)]


def run_purgebridge(nodes, url_list, connections=None, depth=None):
    settings = load_settings({"PURGEBRIDGE_CONNECTIONS": connections, "PURGEBRIDGE_PIPELINE": depth},
                             environ={}, dotenv_path="").replace(nodes=tuple(nodes))
    items = [purge_for_url(u) for u in url_list]
    t0 = time.perf_counter()
    report = fan_out(settings.nodes, items, settings)
    elapsed = time.perf_counter() - t0
    assert report.ok, report.to_dict()["problems"][:3]
    return len(items) * len(nodes) / elapsed


def run_naive(nodes, url_list, budget):
    sent, t0 = 0, time.perf_counter()
    for url in url_list:
        for node in nodes:
            path = url.split("bench.example.test", 1)[1]
            r = requests.request("PURGE", f"http://{node.netloc}{path}", headers={"Host": "bench.example.test"},
                                 timeout=5)
            assert r.status_code == 200, r.status_code
            sent += 1
        if time.perf_counter() - t0 > budget:
            break
    return sent / (time.perf_counter() - t0)


def _raw_node(node, payload, count, out, index):
    sock = socket.create_connection((node.host, node.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer = threading.Thread(target=sock.sendall, args=(payload,))
    writer.start()
    seen, tail = 0, b""
    while seen < count:
        data = sock.recv(262144)
        if not data:
            break
        chunk = tail + data
        seen += chunk.count(b"HTTP/1.1 200")
        tail = chunk[-12:]
        seen -= tail.count(b"HTTP/1.1 200")  # counted again with the next chunk
    seen += tail.count(b"HTTP/1.1 200")
    writer.join()
    sock.close()
    out[index] = seen


def run_ceiling(nodes, url_list):
    payload = b"".join(purge_for_url(u).encode() for u in url_list)
    out = [0] * len(nodes)
    threads = [threading.Thread(target=_raw_node, args=(n, payload, len(url_list), out, i)) for i, n in enumerate(nodes)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    elapsed = time.perf_counter() - t0
    assert sum(out) == len(url_list) * len(nodes), out
    return sum(out) / elapsed


def run_cli(nodes, url_list):
    """``purgebridge purge -`` with ``url_list`` on stdin, as a user runs it; purges/s over the whole process."""
    command = [sys.executable, "-m", "purgebridge"]
    for node in nodes:
        command += ["--node", node.name]
    command += ["purge", "-"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")}
    env["PYTHONPATH"] = str(pathlib.Path(__file__).resolve().parent.parent)
    stdin = ("\n".join(url_list) + "\n").encode()
    t0 = time.perf_counter()
    done = subprocess.run(command, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          timeout=120)
    elapsed = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return len(url_list) * len(nodes) / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=3000)
    parser.add_argument("--cli-urls", type=int, default=30000, help="URLs for (d), the whole-process comparison")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--naive-seconds", type=float, default=5.0)
    parser.add_argument("--sweep", action="store_true", help="also measure connections x pipeline depth")
    parser.add_argument("--vcl", help="VCL for the nodes (default: vcl/wordpress.vcl)")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--note", help="a sentence for the section, e.g. how busy the machine was")
    args = parser.parse_args()
    started = time.monotonic()
    url_list = urls(args.urls)
    with start_cluster(args.vcl, hosts=HOSTS) as cluster:
        nodes = [vn.node for vn in cluster.nodes]
        pb, ceiling, naive = [], [], []
        for round_no in range(args.rounds):  # interleaved so drift hits all three alike
            if time.monotonic() - started > DEADLINE:
                break
            ceiling.append(run_ceiling(nodes, url_list))
            pb.append(run_purgebridge(nodes, url_list))
            naive.append(run_naive(nodes, url_list, args.naive_seconds / args.rounds))
            print(f"round {round_no + 1}: ceiling {ceiling[-1]:,.0f}/s  purgebridge {pb[-1]:,.0f}/s  "
                  f"naive {naive[-1]:,.0f}/s", file=sys.stderr)
        cli, cli_ceiling = [], []
        big = urls(args.cli_urls)
        for round_no in range(args.rounds):
            if time.monotonic() - started > DEADLINE:
                break
            cli_ceiling.append(run_ceiling(nodes, big))
            cli.append(run_cli(nodes, big))
            print(f"round {round_no + 1}, {len(big):,} URLs: ceiling {cli_ceiling[-1]:,.0f}/s  "
                  f"purgebridge purge - {cli[-1]:,.0f}/s", file=sys.stderr)
        sweep = []
        if args.sweep:  # how the defaults were chosen: connections x pipeline depth
            for conns, depth in ((1, 1), (4, 1), (1, 16), (1, 64), (2, 64), (4, 64), (2, 128), (2, 256)):
                rates = [run_purgebridge(nodes, url_list, conns, depth) for _ in range(2)]
                sweep.append((conns, depth, max(rates)))
                print(f"sweep {conns} x {depth}: {max(rates):,.0f}/s", file=sys.stderr)
    med = {name: statistics.median(v) for name, v in (("pb", pb), ("ceiling", ceiling), ("naive", naive))}
    r_ceiling, r_naive = med["pb"] / med["ceiling"], med["pb"] / med["naive"]
    rows = [
        "| sender | URL x node purges/s (median of %d rounds) | purgebridge / this |" % len(pb),
        "|---|---:|---:|",
        f"| (c) ceiling: raw pipelined socket per node, no parsing | {med['ceiling']:,.0f} | {r_ceiling:.2f} |",
        f"| (a) purgebridge fan-out (2 conns x 64 pipelined per node) | {med['pb']:,.0f} | 1.00 |",
        f"| (b) naive: one PURGE per new connection (requests) | {med['naive']:,.0f} | {r_naive:.1f} |",
    ]
    cli_med, cli_ceiling_med = statistics.median(cli), statistics.median(cli_ceiling)
    r_cli = cli_med / cli_ceiling_med
    rows += [
        "",
        f"| {args.cli_urls:,} URLs on 3 nodes (median of {len(cli)} rounds) | URL x node purges/s | "
        "purgebridge / ceiling |",
        "|---|---:|---:|",
        f"| (c) ceiling, as above | {cli_ceiling_med:,.0f} | |",
        f"| (d) `purgebridge purge -`, the whole process timed from outside | {cli_med:,.0f} | {r_cli:.2f} |",
    ]
    verdict = (f"Targets: `purgebridge purge -` >= 0.8 x ceiling: **{r_cli:.2f}** "
               f"({'met' if r_cli >= 0.8 else 'NOT met'}); "
               f"purgebridge fan-out >= 0.5 x ceiling: **{r_ceiling:.2f}** "
               f"({'met' if r_ceiling >= 0.5 else 'NOT met'}); >= 20 x naive: **{r_naive:.1f}** "
               f"({'met' if r_naive >= 20 else 'NOT met'}).")
    text = "\n".join([
        "## Fan-out throughput (`bench/fanout.py`)", "",
        f"Three varnishd nodes on 127.0.0.11-13, {args.urls:,} distinct URLs each, all senders in one run, "
        f"rounds interleaved. Machine: {machine()}.", "", *rows, "", verdict,
    ] + (["", args.note] if args.note else []))
    if sweep:
        text += "\n\nConnections per node x pipeline depth (best of 2, same run):\n\n"
        text += "| connections | depth | purges/s |\n|---:|---:|---:|\n"
        text += "\n".join(f"| {c} | {d} | {r:,.0f} |" for c, d, r in sweep)
    print(text)
    if args.write:
        write_section("fanout", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
