"""A WordPress network (multisite) for the tests: the main site and two sub-sites.

Built on tests/fixtures_wordpress.py's single site, then converted as
wp-admin/network.php does (tests/wordpress/network.php), because WordPress
cannot be installed as a network directly:

- ``subdirectory``: every site on the main site's host, ``/``, ``/blog2/``,
  ``/blog3/``; php -S runs tests/wordpress/router-multisite.php, WordPress's
  own rewrite rules for a subdirectory network.
- ``subdomain``: each sub-site on a host of its own, ``blog2.localhost:PORT``
  and ``blog3.localhost:PORT``. Every site is served by the one php -S on
  127.0.0.1:PORT; a client reaches a site by sending its ``Host`` header, as
  Varnish does. Nothing resolves these names.

WordPress keeps a site's port in its domain (ms-settings.php matches HTTP_HOST
with it) but wp_insert_site() strips the colon; the harness's
tests/wordpress/mu-network-ports.php keeps it.

WP_ACCESSIBLE_HOSTS lists 127.0.0.1 (the relay): with WP_HTTP_BLOCK_EXTERNAL,
WordPress lets a site call its own host only, and a sub-site's host is not the
relay's.

The plugin is network-activated when only ``blog2`` exists; ``blog3`` is
created afterwards, so network activation and ``wp_initialize_site`` are
both what set sites up. The relay URL and secret are the network's settings
(no PURGEBRIDGE_* constants), set as a network admin would.
"""

from dataclasses import dataclass, field
import secrets
import shutil

import pytest
import requests

from fixtures_wordpress import (HARNESS_DIR, HarnessError, WordPressSite, build_wordpress,  # noqa: F401
                                free_port)

NETWORK_KINDS = ("subdirectory", "subdomain")
SUB_SITES = ("blog2", "blog3")


@dataclass(frozen=True)
class NetworkSite:
    """One site of the network: where it lives and how a client reaches it."""

    name: str
    blog_id: int
    host: str   # the Host header: "127.0.0.1:PORT" or "blog2.localhost:PORT"
    path: str   # "/" or "/blog2/"

    @property
    def home(self):
        """home_url('/'), what the plugin sends as the batch's site."""
        return f"http://{self.host}{self.path}"

    def page(self, path):
        """A path of this site as the host sees it: ``page("/feed/")`` -> ``/blog2/feed/``."""
        return self.path + path.lstrip("/")


@dataclass
class Network:
    """The served network; ``wp`` is the main site's WordPressSite (php runs there)."""

    kind: str
    wp: WordPressSite
    sites: dict = field(default_factory=dict)

    @property
    def hosts(self):
        return sorted({site.host for site in self.sites.values()})

    def php(self, code, timeout=120):
        """A PHP snippet in the main site (switch_to_blog() reaches the others)."""
        return self.wp.php(code, timeout=timeout)

    def get(self, site, path, **kwargs):
        """GET a site's page straight from php -S, with the site's Host header."""
        headers = dict(kwargs.pop("headers", None) or {}, Host=site.host)
        return requests.get(f"http://127.0.0.1:{self.wp.port}{site.page(path)}", headers=headers,
                            timeout=kwargs.pop("timeout", 15), allow_redirects=False, **kwargs)

    def stop(self):
        self.wp.stop()


def _network_config(kind, domain):
    return f"""<?php
/* Written by tests/fixtures_multisite.py once the network tables exist. */
define('MULTISITE', true);
define('SUBDOMAIN_INSTALL', {'true' if kind == 'subdomain' else 'false'});
define('DOMAIN_CURRENT_SITE', '{domain}');
define('PATH_CURRENT_SITE', '/');
define('SITE_ID_CURRENT_SITE', 1);
define('BLOG_ID_CURRENT_SITE', 1);
/* Host-only cookies: a subdomain network would scope them to ".{domain}", port included, which no client keeps. */
define('COOKIE_DOMAIN', false);
"""


CREATE_SITE = """
    $id = wp_insert_site(array('domain' => '%(domain)s', 'path' => '%(path)s', 'title' => '%(title)s', 'user_id' => 1));
    if (is_wp_error($id)) { return 'error: ' . $id->get_error_message(); }
    return $id;
"""


def build_network(base, relay_url, secret, kind):
    """A network of three sites, not serving yet; ``.wp.serve()`` starts php -S."""
    if kind not in NETWORK_KINDS:
        raise ValueError(f"kind: expected one of {NETWORK_KINDS}, got {kind!r}")
    config_include = "if (is_file(__DIR__ . '/wp-config-network.php')) { require __DIR__ . '/wp-config-network.php'; }"
    wp = build_wordpress(base, relay_url, secret, extra_config=config_include, activate=False, network=True)
    wp.router = "router-multisite.php"
    try:
        mu = wp.root / "wp-content" / "mu-plugins"
        shutil.copy(HARNESS_DIR / "mu-network-ports.php", mu / "purgebridge-network-ports.php")
        wp.run_php([str(HARNESS_DIR / "network.php"), str(wp.root), wp.url, kind])
        (wp.root / "wp-config-network.php").write_text(_network_config(kind, wp.host))
        network = Network(kind=kind, wp=wp)
        network.sites["main"] = NetworkSite("main", 1, wp.host, "/")

        def place(name):
            if kind == "subdomain":
                return f"{name}.localhost:{wp.port}", "/"
            return wp.host, f"/{name}/"

        def create(name):
            host, path = place(name)
            blog_id = network.php(CREATE_SITE % {"domain": host, "path": path, "title": name.title()})
            if not isinstance(blog_id, int):
                raise HarnessError(f"creating site {name}: {blog_id}")
            network.sites[name] = NetworkSite(name, blog_id, host, path)

        create("blog2")
        activated = network.php("""
            $result = activate_plugin('purgebridge/purgebridge.php', '', true);
            if (is_wp_error($result)) { return 'error: ' . $result->get_error_message(); }
            update_site_option('purgebridge_relay_url', '%s');
            update_site_option('purgebridge_secret', '%s');
            return is_plugin_active_for_network('purgebridge/purgebridge.php');
        """ % (relay_url, secret))
        if activated is not True:
            raise HarnessError(f"network activation failed: {activated}")
        create("blog3")
    except BaseException:
        wp.stop()
        raise
    return network


@pytest.fixture(scope="module", params=NETWORK_KINDS)
def wordpress_network(request, tmp_path_factory):
    """A served network (subdirectory, then subdomain) with purgebridge network-active.

    Its relay URL points at a free loopback port where nothing listens yet:
    the test module starts the relay there.
    """
    relay_port = free_port()
    try:
        network = build_network(tmp_path_factory.mktemp(f"network-{request.param}"),
                                f"http://127.0.0.1:{relay_port}", "wp-net-" + secrets.token_hex(16), request.param)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        network.wp.serve()
        yield network
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        network.stop()
