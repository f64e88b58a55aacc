"""Shared fixtures. Each fixture family lives in its own module, imported here:

- fixtures_cluster: real varnishd nodes on loopback in front of a tiny origin
- fixtures_app:     the Flask ``app``, ``client`` and ``runner`` fixtures
- faultserver:      ``fault_server``, a local HTTP server that misbehaves on purpose
- fixtures_redis:   a private redis-server on loopback (the Redis queue backend)
- fixtures_wordpress: a private MariaDB + Debian's WordPress served by PHP, the plugin active
- fixtures_browser: headless Chromium (Debian's) driven by selenium, and a wp-admin login helper
"""

from faultserver import fault_server  # noqa: F401
from fixtures_cluster import *  # noqa: F401,F403
from fixtures_app import *  # noqa: F401,F403
from fixtures_wordpress import *  # noqa: F401,F403
from fixtures_redis import *  # noqa: F401,F403
from fixtures_browser import *  # noqa: F401,F403
