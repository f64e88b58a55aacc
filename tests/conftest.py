"""Shared fixtures. Each fixture family lives in its own module, imported here:

- fixtures_cluster: real varnishd nodes on loopback in front of a tiny origin
- fixtures_app:     the Flask ``app``, ``client`` and ``runner`` fixtures
"""

from fixtures_cluster import *  # noqa: F401,F403
from fixtures_app import *  # noqa: F401,F403
