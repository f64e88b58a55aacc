"""The suite's fixtures, each family a pytest plugin in tests/fixtures/:

- fixtures.cluster:       real varnishd nodes on loopback in front of a tiny origin
- fixtures.app:           the Flask ``app``, ``client`` and ``runner`` fixtures and signed-event helpers
- fixtures.faults:        ``fault_server``, a local HTTP server that misbehaves on purpose
- fixtures.redis_server:  a private redis-server on loopback (the Redis queue backend)
- fixtures.wordpress:     a private MariaDB + Debian's WordPress served by PHP, the plugin active
- fixtures.multisite:     a WordPress network (subdirectory and subdomain)
- fixtures.browser:       headless Chromium (Debian's) driven by selenium, and a wp-admin login helper
- fixtures.queue:         a private SQLite queue and the journal/writer helpers
- fixtures.relay:         a real ``purgebridge serve`` (``relay_factory``) and the events the integration tests send
- fixtures.wp_relay:      WordPress behind three varnishd with a real relay (``wp_cluster``, ``relay``) and shared steps

The tests are laid out like the code's dependencies on the outside world: ``unit/`` (in-process),
``integration/`` (real varnishd, Redis, relay processes), ``wordpress/`` (real WordPress + MariaDB)
``browser/`` (real Chromium on real WordPress) and ``cms/`` (real Ghost, Strapi and Wagtail, installed by
``.ci/setup-cms``; their helpers are plain modules there: ``instances``, ``live``, ``strapi_site``).
"""

pytest_plugins = [
    "fixtures.cluster",
    "fixtures.app",
    "fixtures.faults",
    "fixtures.redis_server",
    "fixtures.wordpress",
    "fixtures.multisite",
    "fixtures.browser",
    "fixtures.queue",
    "fixtures.relay",
    "fixtures.wp_relay",
]
