"""A real WordPress for the tests: private MariaDB, Debian's WordPress, ``php -S``.

Why each step is the way it is:

- MariaDB gets its own datadir and a socket in a temp dir (``--skip-networking``),
  so it never collides with a system server or another test run.
- Debian's ``/usr/share/wordpress`` is copied with symlinks dereferenced and
  given our own ``wp-config.php``: the packaged one looks up
  ``/etc/wordpress/config-<host>.php`` and points ``wp-content`` at
  ``/var/lib/wordpress``, which a test must not touch.
- WordPress is installed by ``tests/wordpress/install.php`` (``wp_install()``),
  pretty permalinks are set, and rewrite rules are flushed in a *second* PHP
  process: taxonomy rules only exist when the structure is set as WordPress
  starts.
- The plugin is symlinked in (so the tests run the working copy) and activated
  with ``PURGEBRIDGE_RELAY_URL`` / ``PURGEBRIDGE_SECRET`` in wp-config.php.
- The site is served by ``php -S 127.0.0.1:<free port>`` with a router that
  sends non-files to index.php.

Missing php, mariadb or wordpress makes the fixture *fail* with a message
naming the Debian package; it never skips.

The same functions are used by ``bench/wp_editor.py`` outside pytest.
"""

import contextlib
from dataclasses import dataclass, field
import json
import logging
import os
from pathlib import Path
import secrets
import shutil
import socket
import subprocess
import time

import pytest
import requests

from purgebridge import localcluster
from purgebridge.testing.process import stop_process

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "wp-plugin" / "purgebridge"
HARNESS_DIR = REPO / "tests" / "wordpress"
WP_SOURCE = Path(os.environ.get("PURGEBRIDGE_WP_SOURCE", "/usr/share/wordpress"))
WP_CONTENT_SOURCE = Path(os.environ.get("PURGEBRIDGE_WP_CONTENT_SOURCE", "/var/lib/wordpress/wp-content"))
RESULT_MARKER = "@@PURGEBRIDGE@@"


class HarnessError(RuntimeError):
    """The WordPress harness could not be built or used; the message says why."""


def require_tools():
    """Raise HarnessError naming the Debian package of every missing piece."""
    missing = []
    for tool, package in (("php", "php-cli"), ("mariadbd", "mariadb-server"),
                          ("mariadb-install-db", "mariadb-server"), ("mariadb", "mariadb-client")):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            missing.append(f"{tool} (apt-get install {package})")
    if not (WP_SOURCE / "wp-settings.php").exists():
        missing.append(f"{WP_SOURCE}/wp-settings.php (apt-get install wordpress)")
    if shutil.which("php"):
        mods = subprocess.run(["php", "-m"], capture_output=True, text=True, timeout=30).stdout.lower()
        if "mysqli" not in mods:
            missing.append("php mysqli extension (apt-get install php-mysql)")
    if missing:
        raise HarnessError("WordPress harness needs: " + ", ".join(missing))


def _tool(name):
    found = shutil.which(name) or str(Path("/usr/sbin", name))
    return found


# The admin account tests/wordpress/install.php creates (user "admin").
ADMIN_PASSWORD = "admin-password-for-tests"


def free_port():
    """A loopback port that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, what):
    """Poll predicate() until true; HarnessError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last = exc
        time.sleep(0.1)
    raise HarnessError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


@dataclass
class MariaDB:
    """A private mariadbd on a unix socket only."""

    base: Path
    proc: subprocess.Popen = None
    database: str = "wordpress"
    user: str = "wp"
    password: str = "wp-test-password"

    @property
    def datadir(self):
        return self.base / "data"

    @property
    def socket(self):
        return self.base / "mysql.sock"

    @property
    def tmpdir(self):
        """Its own temporary directory: with the shared /tmp, bootstraps running side by side
        (parallel test runs) failed removing each other's temporary tables."""
        return self.base / "tmp"

    def client(self, sql, timeout=30):
        """Run SQL as root through the socket; return stdout."""
        proc = subprocess.run(
            [_tool("mariadb"), "--no-defaults", "-S", str(self.socket), "-uroot", "-N", "-B", "-e", sql],
            capture_output=True, text=True, timeout=timeout)
        if proc.returncode:
            raise HarnessError(f"mariadb client failed: {proc.stderr.strip()}")
        return proc.stdout

    def start(self):
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        user = ["--user=root"] if os.geteuid() == 0 else []
        init = subprocess.run(
            [_tool("mariadb-install-db"), "--no-defaults", f"--datadir={self.datadir}",
             "--auth-root-authentication-method=normal", "--skip-test-db", f"--tmpdir={self.tmpdir}", *user],
            capture_output=True, text=True, timeout=120)
        if init.returncode:
            raise HarnessError(f"mariadb-install-db failed: {init.stderr.strip()[-2000:]}")
        self.proc = subprocess.Popen(
            [_tool("mariadbd"), "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
             "--skip-networking", f"--pid-file={self.base / 'mariadb.pid'}", f"--tmpdir={self.tmpdir}",
             f"--log-error={self.base / 'mariadb.err'}", "--innodb-buffer-pool-size=32M",
             "--innodb-flush-log-at-trx-commit=2", "--skip-log-bin", "--skip-name-resolve", *user],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise HarnessError("mariadbd exited: " + self._log_tail())
            return self.socket.exists() and self.client("SELECT 1", timeout=5).strip() == "1"

        try:
            wait_for(ready, 60, "mariadbd socket")
        except HarnessError as exc:
            self.stop()
            raise HarnessError(f"{exc}; {self._log_tail()}") from None
        self.client(
            f"CREATE DATABASE {self.database} CHARACTER SET utf8mb4; "
            f"CREATE USER '{self.user}'@'localhost' IDENTIFIED BY '{self.password}'; "
            f"GRANT ALL ON {self.database}.* TO '{self.user}'@'localhost';")
        return self

    def _log_tail(self):
        try:
            return (self.base / "mariadb.err").read_text(errors="replace")[-1500:]
        except OSError:
            return "(no mariadb.err)"

    def stop(self):
        stop_process(self.proc, timeout=30)
        self.proc = None


@dataclass
class WordPressSite:
    """One installed WordPress; ``serve()`` starts php -S."""

    base: Path
    port: int
    relay_url: str
    secret: str
    db: MariaDB
    server: subprocess.Popen = None
    php_ini: list = field(default_factory=list)
    router: str = "router.php"  # in tests/wordpress/; a network uses router-multisite.php

    @property
    def root(self):
        return self.base / "htdocs"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def run_php(self, args, timeout=120, check=True):
        proc = subprocess.run(["php", *self.php_ini, *args], capture_output=True, text=True, timeout=timeout,
                              cwd=str(HARNESS_DIR))
        if check and proc.returncode:
            raise HarnessError(f"php {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def php(self, code, timeout=120):
        """Run a PHP snippet inside WordPress (a function body); return its JSON-decoded return value.

        The plugin's shutdown handler runs when the snippet's process ends, as
        after a real request: changes made here are sent to the relay.
        """
        snippet = self.base / f"snippet-{secrets.token_hex(6)}.php"
        snippet.write_text(code)
        try:
            proc = self.run_php([str(HARNESS_DIR / "wp-run.php"), str(self.root), self.url, str(snippet)],
                                timeout=timeout)
        finally:
            snippet.unlink()
        out = proc.stdout
        if RESULT_MARKER not in out:
            raise HarnessError(f"snippet printed no result:\n{out[-3000:]}\n{proc.stderr[-3000:]}")
        return json.loads(out.rsplit(RESULT_MARKER, 1)[1].strip().splitlines()[0])

    def make_due(self, post_id):
        """A scheduled post falls due: its date and its cron event move into the past, with no hook run.

        As if the clock had advanced; the next WP-Cron run publishes it, as
        WordPress would.
        """
        self.php("""
            global $wpdb;
            $past = time() - 5;
            $wpdb->update($wpdb->posts, array('post_date' => get_date_from_gmt(gmdate('Y-m-d H:i:s', $past)),
                'post_date_gmt' => gmdate('Y-m-d H:i:s', $past)), array('ID' => %d));
            clean_post_cache(%d);
            wp_clear_scheduled_hook('publish_future_post', array(%d));
            wp_schedule_single_event($past, 'publish_future_post', array(%d));
            return true;
        """ % ((post_id,) * 4))

    def get(self, path, headers=None, timeout=15, **kwargs):
        return requests.get(self.url + path, headers=headers or {}, timeout=timeout, allow_redirects=False,
                            **kwargs)

    def debug_log(self):
        path = self.root / "wp-content" / "debug.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def serve(self):
        env = dict(os.environ, PHP_CLI_SERVER_WORKERS="4")
        self.server = subprocess.Popen(
            ["php", *self.php_ini, "-S", self.host, "-t", str(self.root), str(HARNESS_DIR / self.router)],
            stdout=open(self.base / "php-server.log", "ab"), stderr=subprocess.STDOUT, env=env,
            cwd=str(self.root), start_new_session=True)

        def up():
            if self.server.poll() is not None:
                raise HarnessError("php -S exited: " + (self.base / "php-server.log").read_text()[-1500:])
            return self.get("/", timeout=5).status_code == 200

        wait_for(up, 30, f"php -S on {self.host}")
        return self

    def stop(self):
        stop_process(self.server, group=True)
        self.server = None
        self.db.stop()


def _wp_config(site, extra, network=False):
    salts = "\n".join(f"define('{name}', '{secrets.token_hex(24)}');" for name in (
        "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
        "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"))
    return f"""<?php
/* Written by tests/fixtures_wordpress.py for one test run. */
define('DB_NAME', '{site.db.database}');
define('DB_USER', '{site.db.user}');
define('DB_PASSWORD', '{site.db.password}');
define('DB_HOST', 'localhost:{site.db.socket}');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{salts}
$table_prefix = 'wp_';
{"" if network else f"define('WP_HOME', '{site.url}');"}
{"" if network else f"define('WP_SITEURL', '{site.url}');"}
define('WP_DEBUG', true);
define('WP_DEBUG_LOG', true);
define('WP_DEBUG_DISPLAY', false);
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_AUTO_UPDATE_CORE', false);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('WP_ACCESSIBLE_HOSTS', 'localhost{",127.0.0.1" if network else ""}');
{"" if network else f"define('PURGEBRIDGE_RELAY_URL', '{site.relay_url}');"}
{"" if network else f"define('PURGEBRIDGE_SECRET', '{site.secret}');"}
{extra}
if (!defined('ABSPATH')) {{
    define('ABSPATH', __DIR__ . '/');
}}
require_once ABSPATH . 'wp-settings.php';
"""


def build_wordpress(base, relay_url, secret, extra_config="", activate=True, plugin_zip=None, network=False):
    """Private MariaDB + a copy of Debian's WordPress, installed; not serving yet.

    ``network=True`` leaves out WP_HOME/WP_SITEURL (they would give every site
    of a network the main site's URL) and the PURGEBRIDGE_* constants (a
    network's relay is set by its network admin): tests/fixtures_multisite.py.

    Returns a WordPressSite; call ``.serve()`` to start php -S and ``.stop()``
    to stop both servers. With ``plugin_zip`` (wp-plugin/bin/build-zip.sh's
    output) the plugin is installed from that zip by WordPress's own
    Plugin_Upgrader instead of symlinking the working copy.
    """
    require_tools()
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    db = MariaDB(base / "db").start()
    site = WordPressSite(base=base, port=free_port(), relay_url=relay_url, secret=secret, db=db)
    try:
        shutil.copytree(WP_SOURCE, site.root, symlinks=False)
        shutil.rmtree(site.root / "wp-content")
        shutil.copytree(WP_CONTENT_SOURCE, site.root / "wp-content", symlinks=False)
        (site.root / "wp-config.php").unlink(missing_ok=True)
        (site.root / "wp-config.php").write_text(_wp_config(site, extra_config, network))
        mu = site.root / "wp-content" / "mu-plugins"
        mu.mkdir(exist_ok=True)
        shutil.copy(HARNESS_DIR / "mu-test-hooks.php", mu / "purgebridge-test-hooks.php")
        if plugin_zip is None:
            (site.root / "wp-content" / "plugins" / "purgebridge").symlink_to(PLUGIN_DIR, target_is_directory=True)
        install = str(HARNESS_DIR / "install.php")
        site.run_php([install, str(site.root), site.url, "install"])
        if plugin_zip is not None:
            site.run_php([install, str(site.root), site.url, "install-zip", str(plugin_zip)])
        site.run_php([install, str(site.root), site.url, "permalinks"])
        site.run_php([install, str(site.root), site.url, "flush"])
        if activate:
            site.run_php([install, str(site.root), site.url, "activate"])
    except BaseException:
        db.stop()
        raise
    return site


@contextlib.contextmanager
def served_wordpress(base, relay_url=None, secret=None, before_serve=None, **build):
    """Build one WordPress under ``base``, serve it, and stop it (php -S and MariaDB) on the way out.

    The one place a test module gets a served site: ``relay_url`` defaults to a
    free loopback port where nothing listens yet, ``secret`` to a random one;
    ``before_serve(site)`` may change the built site (its wp-config.php) before
    php -S starts; ``build`` goes to :func:`build_wordpress`. A harness fault
    fails the test with its one-line message instead of an error trace.
    """
    try:
        site = build_wordpress(base, relay_url or f"http://127.0.0.1:{free_port()}",
                               secret or "wp-test-" + secrets.token_hex(16), **build)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        if before_serve is not None:
            before_serve(site)
        site.serve()
    except HarnessError as exc:
        site.stop()
        pytest.fail(str(exc), pytrace=False)
    try:
        yield site
    finally:
        site.stop()


class WordPressOrigin:
    """What localcluster.start_cluster needs of an origin: where the nodes fetch from (php -S is the site's)."""

    def __init__(self, host, port):
        self.host = host
        self.port = port

    def stop(self):
        """The WordPress fixture owns php -S."""


@contextlib.contextmanager
def wordpress_cluster(port, workdir, vcl=REPO / "vcl" / "wordpress.vcl"):
    """Three varnishd on loopback in front of the WordPress served on ``port``; a missing varnishd fails the test."""
    if not localcluster.find_varnishd():
        pytest.fail(localcluster.varnishd_missing_message(), pytrace=False)
    if not localcluster.has_site_markers(vcl):
        pytest.fail(f"{vcl} is missing or lacks the site marker lines", pytrace=False)
    with localcluster.start_cluster(vcl, origin=WordPressOrigin("127.0.0.1", port), workdir=workdir) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def wordpress_site(tmp_path_factory):
    """A served WordPress with purgebridge active, shared by one test module.

    ``site.relay_url`` points at a free loopback port where nothing listens
    yet: the module starts a relay (real or recording stub) there itself.
    """
    with served_wordpress(tmp_path_factory.mktemp("wordpress")) as site:
        yield site


class RecordingRelay:
    """A stand-in relay on the site's relay port: checks the signature like the
    real one, records every batch, and answers what the test asks for.

    ``answer`` is the status for the next requests (202 by default); 202
    answers carry ``{"event_id": ..., "queued": N}`` as the relay's do.
    ``answer = "hang"`` plays a blackholed relay: the request is read and
    recorded, then nothing is answered until ``clear()`` (or 30 s) and the
    connection is closed without a reply; the batch is not accepted.
    """

    def __init__(self, port, secret):
        import hashlib
        import hmac
        import http.server
        import threading

        relay = self
        self.secret = secret
        self.answer = 202
        self.batches = []
        self.requests = []
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.released = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._reply(200 if self.path == "/healthz" else 404, b'{"status": "ok"}')  # as the relay's /healthz

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                ts = self.headers.get("X-Purgebridge-Timestamp", "")
                sig = self.headers.get("X-Purgebridge-Signature", "")
                want = "sha256=" + hmac.new(relay.secret.encode(), ts.encode() + b"." + body,
                                            hashlib.sha256).hexdigest()
                with relay.lock:
                    relay.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    status = relay.answer
                    if not hmac.compare_digest(sig, want) or abs(time.time() - int(ts or 0)) > 300:
                        relay.bad_signatures += 1
                        status = 401
                    elif status == 202:
                        relay.batches.append(json.loads(body))
                if status == "hang":
                    relay.released.wait(30)
                    self.close_connection = True
                    return
                payload = {"event_id": f"e{len(relay.requests)}", "queued": 1} if status == 202 else {"error": status}
                self._reply(status, json.dumps(payload).encode())

            def _reply(self, status, payload):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def changes(self):
        """Every change of every accepted batch, in order."""
        with self.lock:
            return [c for batch in self.batches for c in batch["changes"]]

    def clear(self):
        self.released.set()
        with self.lock:
            self.batches.clear()
            self.requests.clear()
            self.bad_signatures = 0
            self.answer = 202

    def hang(self):
        """From now on, read requests and never answer them (a blackholed relay)."""
        with self.lock:
            self.released.clear()
            self.answer = "hang"

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def recording_relay(wordpress_site):
    """A RecordingRelay listening where the module's WordPress sends events."""
    port = int(wordpress_site.relay_url.rsplit(":", 1)[1])
    relay = RecordingRelay(port, wordpress_site.secret)
    try:
        yield relay
    finally:
        relay.stop()
