"""Stopping a child process the way every test and benchmark does: SIGTERM, then SIGKILL."""

import os
import signal
import subprocess
import time
from typing import Optional


def stop_process(proc: Optional[subprocess.Popen], timeout: float = 10, group: bool = False) -> None:
    """Stop a child (SIGTERM, then SIGKILL after ``timeout``); with ``group`` its whole
    process group (php -S forks workers that outlive their parent)."""
    if proc is None:
        return
    if group:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    elif proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        if group:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            proc.kill()
        proc.wait(timeout=timeout)
    if group:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
