"""Shared bits of the benchmarks: machine description and docs/benchmarks.md sections.

Every benchmark measures its contenders side by side in one run (the machine
is shared and noisy, so only ratios from one run mean anything) and rewrites
its own section of docs/benchmarks.md between marker comments.
"""

import os
import pathlib
import platform
import re
import signal
import subprocess
import sys
import threading

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def watchdog(seconds):
    """SIGTERM this benchmark after ``seconds``: a bound on the whole run, on top of each loop's own."""
    # SIGTERM (this timer's, or anyone's) ends the run through SystemExit, so every ``with`` and
    # ``finally`` stops its varnishd and relays: Python's default action would leave them running.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()
    return timer


def machine():
    """One line describing where the numbers came from."""
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        varnish = subprocess.run(["varnishd", "-V"], capture_output=True, text=True, timeout=10).stderr.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        varnish = "varnishd not found"
    return (f"{os.cpu_count()} cores, {cpu}; {platform.system()} {platform.release()}; "
            f"Python {sys.version.split()[0]}; {varnish}")


def write_section(name, text):
    """Replace (or append) the section between <!-- bench:NAME --> markers."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nEach section is written by its script under bench/.\n"
    if begin in current:
        current = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: block, current, flags=re.S)
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(current)


def load():
    """The machine's load average (1, 5, 15 min) as text: the caveat every figure of a shared machine needs."""
    try:
        return "/".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"
