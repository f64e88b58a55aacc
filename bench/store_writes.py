"""The SQLite queue's write path, before and after a change: journal appends per second and their latency.

Not the published end-to-end benchmark (bench/relay.py is): a probe of the
store alone, so a change to how writes are serialised (issue 12: one writer
thread instead of a lock plus callbacks) is measured without HTTP in the way.
Both contenders run in this one invocation, round by round in turns, each
round in a subprocess of its own: ``--baseline REF`` (default ``main``) is exported with
``git archive`` into a temporary directory and imported from there; the other
is this checkout. Each runs the same two scenarios on a queue file on disk
(fsync is real):

* ``appends``: ``--threads`` threads each append ``--events`` signed events
  (the accept path: group commit, one fsync per group);
* ``appends+worker``: the same while three threads in the same process do
  what the worker does to the same file (requeue, claim, ack, with relaxed
  durability), so appends share the writer with other writes.

Printed per scenario: appended events/s, append latency p50/p99 (ms), and
the ratio after/before. Then the same comparison end to end: each tree's own
``bench/accept_probe.py`` (``purgebridge serve`` with its worker process,
signed events over HTTP; ``--accept-rounds`` rounds, the two trees taking
turns round by round so the machine's noise falls on both). ``--write``
puts the tables into docs/benchmarks.md. Every loop is bounded in count and
in time. Usage::

    python bench/store_writes.py [--baseline main] [--threads 16] [--events 300] [--rounds 3] \
        [--accept-events 3000] [--accept-rounds 3] [--write]
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
WORKER_THREADS = 3
BODY = json.dumps({"schema": 1, "site": "https://blog.example.test/", "changes": [{"kind": "site",
                                                                                   "action": "ping"}]}).encode()


def scenario(queue_cls, directory, threads, events, with_worker, deadline):
    """One scenario on a fresh queue file; returns (events/s, p50 ms, p99 ms, worker writes)."""
    queue = queue_cls(os.path.join(directory, f"q-{with_worker}-{time.monotonic_ns()}.sqlite3"))
    latencies, errors, lock = [], [], threading.Lock()
    stop = threading.Event()
    worker_writes = [0]

    def append(offset):
        mine = []
        try:
            for n in range(events):
                if time.monotonic() > deadline:
                    break
                started = time.perf_counter()
                queue.append("wordpress", "blog.example.test", BODY, f"sha256={offset + n:064x}")
                mine.append(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - reported, the run is void then
            errors.append(repr(exc))
        with lock:
            latencies.extend(mine)

    def work(index):
        node = f"127.0.0.{index + 1}:6081"
        relax = getattr(queue, "relax_durability", None)
        if relax is not None:
            relax()
        now = time.time()
        items = [(f"PURGE http://blog.example.test/p{k}/", '{"method":"PURGE"}', now, now) for k in range(40)]
        while not stop.is_set() and time.monotonic() < deadline:
            queue.requeue(node, items)
            claims = queue.claim(node, limit=256, lease=30.0)
            queue.ack(claims)
            worker_writes[0] += 3

    workers = [threading.Thread(target=work, args=(i,)) for i in range(WORKER_THREADS)] if with_worker else []
    for thread in workers:
        thread.start()
    appenders = [threading.Thread(target=append, args=(i * 1_000_000,)) for i in range(threads)]
    started = time.perf_counter()
    for thread in appenders:
        thread.start()
    for thread in appenders:
        thread.join(max(0.0, deadline - time.monotonic()) + 5)
    elapsed = time.perf_counter() - started
    stop.set()
    for thread in workers:
        thread.join(30)
    queue.close()
    if errors:
        raise SystemExit(f"append errors: {errors[:3]}")
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return len(latencies) / elapsed, pick(0.5), pick(0.99), worker_writes[0]


def child(args):
    """Run in the contender's subprocess: import ITS purgebridge, print one JSON line of results."""
    import purgebridge
    from purgebridge.store.sqlite import Queue

    if not purgebridge.__file__.startswith(os.environ["PYTHONPATH"]):
        raise SystemExit(f"imported {purgebridge.__file__}, not the contender in {os.environ['PYTHONPATH']}")

    deadline = time.monotonic() + args.seconds
    results = {}
    with tempfile.TemporaryDirectory(prefix="purgebridge-writes-", dir=args.dir) as tmp:
        for name, with_worker in (("appends", False), ("appends+worker", True)):
            rounds = [scenario(Queue, tmp, args.threads, args.events, with_worker, deadline)
                      for _ in range(args.rounds)]
            rounds.sort()
            results[name] = rounds[len(rounds) // 2]  # the median round by rate
    print(json.dumps(results))


def median_by_rate(results):
    """Per scenario, the round with the median rate."""
    return {name: sorted(result[name] for result in results)[len(results) // 2] for name in results[0]}


def run_contender(label, path, args):
    env = dict(os.environ, PYTHONPATH=str(path))
    command = [sys.executable, __file__, "--child", "--threads", str(args.threads), "--events", str(args.events),
               "--rounds", "1", "--seconds", str(args.seconds), "--dir", args.dir]
    out = subprocess.run(command, env=env, cwd=str(path), capture_output=True, text=True,
                         timeout=args.seconds * 2 + 60)
    if out.returncode != 0:
        raise SystemExit(f"{label} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def accept_rate(tree, args):
    """One round of ``tree``'s own accept probe: events/s answered 202."""
    out = subprocess.run([sys.executable, str(tree / "bench" / "accept_probe.py"), "--events", str(args.accept_events),
                          "--rounds", "1"], capture_output=True, text=True, timeout=300)
    found = re.search(r"= (\d+) events/s accepted", out.stdout)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"accept probe in {tree} failed:\n{out.stdout[-1500:]}{out.stderr[-1500:]}")
    return int(found.group(1))


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main", help="git ref to compare with (exported with git archive)")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--events", type=int, default=300, help="appends per thread")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=120.0, help="bound on each contender's whole run")
    parser.add_argument("--dir", default=str(REPO), help="where the queue files go (a real disk: fsync counts)")
    parser.add_argument("--accept-events", type=int, default=3000, help="signed events per accept-probe round")
    parser.add_argument("--accept-rounds", type=int, default=3, help="accept-probe rounds per tree (0: none)")
    parser.add_argument("--write", action="store_true", help="write the tables into docs/benchmarks.md")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.threads <= 64 or not 1 <= args.events <= 10_000 or not 1 <= args.rounds <= 9:
        raise SystemExit("threads 1..64, events 1..10000, rounds 1..9")
    if not 1 <= args.accept_events <= 20_000 or not 0 <= args.accept_rounds <= 9:
        raise SystemExit("accept-events 1..20000, accept-rounds 0..9")
    return args


def main(argv=None):
    args = parse(argv)
    if args.child:
        child(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="purgebridge-baseline-") as base:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline, "purgebridge", "bench"],
                                 capture_output=True, check=True, timeout=60).stdout
        subprocess.run(["tar", "-x", "-C", base], input=archive, check=True, timeout=60)
        rounds = {args.baseline: [], "this tree": []}
        for _ in range(args.rounds):  # in turns, round by round: the machine's noise falls on both
            rounds[args.baseline].append(run_contender(f"baseline {args.baseline}", pathlib.Path(base), args))
            rounds["this tree"].append(run_contender("this checkout", REPO, args))
        before, after = (median_by_rate(rounds[label]) for label in (args.baseline, "this tree"))
        accepted = {args.baseline: [], "this tree": []}
        for _ in range(args.accept_rounds):
            accepted[args.baseline].append(accept_rate(pathlib.Path(base), args))
            accepted["this tree"].append(accept_rate(REPO, args))
    lines = [f"Store alone: {args.threads} threads x {args.events} journal appends, median of {args.rounds} "
             f"rounds taken in turns, queue file on disk (fsync real); `appends+worker` adds {WORKER_THREADS} threads doing "
             "requeue/claim/ack on the same queue.", "",
             "| scenario | tree | appends/s | p50 ms | p99 ms | other writes done |", "|---|---|---:|---:|---:|---:|"]
    for name in before:
        for label, result in ((args.baseline, before[name]), ("this tree", after[name])):
            rate, p50, p99, writes = result
            lines.append(f"| {name} | {label} | {rate:.0f} | {p50:.2f} | {p99:.2f} | {writes} |")
        lines.append(f"| {name} | ratio | {after[name][0] / before[name][0]:.2f} | "
                     f"{after[name][1] / before[name][1]:.2f} | {after[name][2] / before[name][2]:.2f} | |")
    lines += ["", "`other writes done`: while appends flood, the one writer gives the tasks that waited during a "
              "group their turn before the next group, so in-process worker writes get fewer turns than under the "
              "old thread lock (which let them crowd out the appends); in the relay the worker is a process of its "
              "own and takes turns with the API process through `flock`, one transaction at a time, as before."]
    if args.accept_rounds:
        median = {label: sorted(rates)[len(rates) // 2] for label, rates in accepted.items()}
        lines += ["", f"End to end (`bench/accept_probe.py` of each tree, {args.accept_events} signed events over "
                  f"8 connections, rounds taken in turns): accepted events/s", "",
                  "| tree | rounds | median |", "|---|---|---:|"]
        for label, rates in accepted.items():
            lines.append(f"| {label} | {', '.join(str(r) for r in rates)} | {median[label]} |")
        lines.append(f"| ratio | | {median['this tree'] / median[args.baseline]:.2f} |")
    print("\n".join(lines))
    if args.write:
        sys.path.insert(0, str(REPO / "bench"))
        from common import machine, write_section

        write_section("store-writes", "## SQLite writes: one writer thread (bench/store_writes.py)\n\n"
                      f"{machine()}; baseline `{args.baseline}`.\n\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
