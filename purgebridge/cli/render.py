"""What the ``purgebridge`` command prints: the nodes' truth, in as few lines as it takes.

Two rules shape everything here. A state the relay does not know is shown
as unknown, never as a guess (``up: null`` is "unknown", not "down"). And
the same failure on many URLs is one line with a count and examples, not
one line per URL: a down node used to print 5,000 identical lines for a
5,000-URL purge, burying the one fact that mattered.
"""

from dataclasses import dataclass, field
import datetime
from typing import Any, Dict, List, Optional, Tuple

EXAMPLES = 3  # URLs named per group of identical failures

# ``purgebridge status`` exit codes (docs/cli.md); the worst condition found wins, in this order.
STATUS_OK = 0
STATUS_UNREACHABLE = 1      # the relay did not answer, or answered an error
STATUS_RELAY_DEGRADED = 5   # its worker process is not running, or its queue refuses writes
STATUS_NODE_DOWN = 3        # a node does not answer: its purges wait in the queue
STATUS_NODE_FAILING = 4     # a node refuses purges, or dead letters wait for "purgebridge queue retry"


# --- purge / ban reports ------------------------------------------------------------------

def grouped_problems(problems: List[dict]) -> List[Tuple[str, str, str, int, int, List[str]]]:
    """``(node, outcome, reason, count, max tries, example items)`` per distinct failure, biggest first."""
    groups: Dict[Tuple[str, str, str], List[dict]] = {}
    for problem in problems:
        groups.setdefault((problem["node"], problem["outcome"], problem["reason"]), []).append(problem)
    rows = [(node, outcome, reason, len(items), max(p["attempts"] for p in items),
             [p["item"] for p in items[:EXAMPLES]]) for (node, outcome, reason), items in groups.items()]
    rows.sort(key=lambda row: (-row[3], row[0], row[1]))
    return rows


def report_table(report: Dict[str, Any]) -> str:
    """``Report.to_dict()`` as the per-node table and one line per distinct failure (docs/cli.md)."""
    headers = ["node", "purged", "not cached", "failed", "refused", "time"]
    rows = [[n["node"], n["purged"], n["not_cached"], n["failed"], n["refused"], f"{n['seconds'] * 1000:.0f} ms"]
            for n in report["nodes"]]
    widths = [max(len(str(v)) for v in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
             for row in [headers] + rows]
    problems = grouped_problems(report["problems"])
    if problems:
        lines += ["", "not acknowledged:"]
        for node, outcome, reason, count, tries, examples in problems:
            more = f" and {count - len(examples)} more" if count > len(examples) else ""
            noun = "request" if count == 1 else "requests"
            lines.append(f"  {node}  {outcome}: {count} {noun} ({reason}, {tries} {'try' if tries == 1 else 'tries'})"
                         f": {', '.join(examples)}{more}")
    lines += [f"error: {error}" for error in report.get("errors", [])]
    return "\n".join(lines)


# --- purgebridge status ---------------------------------------------------------------------

@dataclass
class StatusVerdict:
    """What ``purgebridge status`` concludes from ``/v1/status``: the exit code and why."""

    code: int = STATUS_OK
    problems: List[str] = field(default_factory=list)

    def worse(self, code: int, problem: str) -> None:
        order = [STATUS_OK, STATUS_NODE_FAILING, STATUS_NODE_DOWN, STATUS_RELAY_DEGRADED, STATUS_UNREACHABLE]
        if order.index(code) > order.index(self.code):
            self.code = code
        self.problems.append(problem)


def node_label(node: Dict[str, Any]) -> str:
    """``up``, ``down``, ``refusing`` or ``unknown`` (the relay has not sent it anything since it started)."""
    if node.get("up") is None:
        return "unknown"
    if node.get("up") is False:
        return "down"
    if node.get("refusing"):
        return "refusing"
    return "up"


def _clock(at: Optional[float]) -> str:
    if not at:
        return "-"
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%H:%M:%S UTC")


def _age(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def _uptime(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s" if minutes else f"{secs}s"


def judge_status(data: Dict[str, Any]) -> StatusVerdict:
    """The verdict on a ``/v1/status`` answer: worker, queue, each node, dead letters (docs/cli.md)."""
    verdict = StatusVerdict()
    if not data.get("worker") and not data.get("worker_starting"):  # just started: not a failure yet
        verdict.worse(STATUS_RELAY_DEGRADED, "the relay's worker process is not running: nothing is being purged")
    if data.get("queue_writable") is False:
        verdict.worse(STATUS_RELAY_DEGRADED, "the relay's queue does not take writes (full disk?): "
                                             "new events are refused with 503")
    for node in data.get("nodes", []):
        label = node_label(node)
        waiting = node.get("pending", 0) + node.get("in_flight", 0)
        if label == "down":
            since = f" since {_clock(node.get('down_since'))}" if node.get("down_since") else ""
            verdict.worse(STATUS_NODE_DOWN, f"node {node['node']} is down{since} ({node.get('last_error') or 'no answer'})"
                                            f"; {waiting} purge(s) wait for it")
        elif label == "refusing":
            verdict.worse(STATUS_NODE_FAILING, f"node {node['node']} refuses purges ({node.get('last_error')}): "
                                               "check its acl")
        if node.get("dead"):
            verdict.worse(STATUS_NODE_FAILING, f"node {node['node']}: {node['dead']} dead letter(s); "
                                               f"retry with: purgebridge queue retry --node {node['node']}")
    return verdict


def status_text(data: Dict[str, Any], base_url: str, verdict: StatusVerdict) -> str:
    """``/v1/status`` for people: the relay, its queue and totals, one row per node, then the problems."""
    processes = data.get("processes") or {}
    worker = (f"worker running (pid {processes.get('worker')})" if data.get("worker")
              else "worker starting" if data.get("worker_starting") else "worker NOT running")
    queue_ok = "queue writable" if data.get("queue_writable") is not False else "queue NOT writable"
    lines = [f"relay {data.get('version', '?')} at {base_url}: up {_uptime(data.get('uptime'))}, {worker}, "
             f"{queue_ok}"]
    q = data.get("queue", {})
    lines.append(f"queue: {q.get('depth', '?')} pending, {q.get('dead', '?')} dead letter(s), "
                 f"oldest pending {_age(q.get('oldest_pending_age'))}")
    totals = data.get("totals") or {}
    if totals:
        lines.append("totals: " + ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in sorted(totals.items())))
    nodes = data.get("nodes", [])
    if nodes:
        width = max(len(n["node"]) for n in nodes)
        lines += ["", f"{'node'.ljust(width)}  {'state':<8}  {'since':<12}  {'latency':>9}  {'pending':>7}  "
                      f"{'dead':>5}  {'keys':<4}  last error"]
        for n in nodes:
            label = node_label(n)
            latency = n.get("latency_ms")
            # a node that refuses everything refuses PURGEKEYS too: that says nothing about xkey in its VCL
            keys = "?" if n.get("refusing") else {True: "yes", False: "no"}.get(n.get("keys"), "?")
            since = _clock(n.get("down_since")) if label == "down" else "-"
            error = n.get("last_error") or ("nothing sent since the relay started" if label == "unknown" else "")
            lines.append(f"{n['node'].ljust(width)}  {label:<8}  {since:<12}  "
                         f"{'-' if latency is None else f'{latency:.1f} ms':>9}  "
                         f"{n.get('pending', 0) + n.get('in_flight', 0):>7}  {n.get('dead', 0):>5}  {keys:<4}  {error}")
    if verdict.problems:
        lines += ["", "problems:"] + [f"  {problem}" for problem in verdict.problems]
    return "\n".join(lines)
