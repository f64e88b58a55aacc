"""The test harness, shared by tests/ and bench/: real processes and clusters on loopback, and a fake clock.

- :class:`RelayProcess` -- ``purgebridge serve`` as a subprocess (start, status, wait, kill a child, stop)
- ``localcluster`` -- real varnishd nodes in front of a tiny origin (``purgebridge.testing.cluster``)
- :class:`FakeClock` -- time that moves only when told, for the worker's timing rules
- :func:`stop_process` -- SIGTERM, then SIGKILL, optionally for a whole process group

Part of the package (not tests/) so the benchmarks use the very same code;
it imports requests, which the package needs anyway, and no test framework.
"""

from purgebridge.testing import cluster as localcluster
from purgebridge.testing.clock import FakeClock
from purgebridge.testing.process import stop_process
from purgebridge.testing.relay import COMMAND, RelayError, RelayProcess

__all__ = ["COMMAND", "FakeClock", "RelayError", "RelayProcess", "localcluster", "stop_process"]
