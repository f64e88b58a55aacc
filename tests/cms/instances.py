"""Real CMS instances on loopback for the live tests: Ghost, Strapi and Wagtail.

Each CMS is installed once by ``.ci/setup-cms`` into ``CACHE`` (default
``/var/cache/purgebridge-cms``, ``PURGEBRIDGE_CMS_CACHE`` overrides) and started
here per test module with its own data directory and a free loopback port.
Every instance is configured through its own admin API, as an administrator
would do it in its admin screens, and is kept from calling anything but
loopback (telemetry, update checks, mail, gravatar off).

A CMS that is not installed is a test *failure* naming the install command,
never a skip (:func:`require`).

This module does not import pytest at module level so that it can be used
from scripts (``python tests/cms/instances.py capture ghost``) too.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Optional

import requests

CACHE = Path(os.environ.get("PURGEBRIDGE_CMS_CACHE", "/var/cache/purgebridge-cms"))
REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run `bash .ci/setup-cms` (or `bash .ci/setup`) to install it"
START_TIMEOUT = 180.0   # seconds: Ghost migrates a new SQLite database on first start (~30 s on 2 cores)
HTTP_TIMEOUT = 30.0


class CMSError(AssertionError):
    """A CMS is missing, did not start, or refused a step (an AssertionError: a test failure, never a skip)."""


# --------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def node_binary() -> str:
    """The Node.js that .ci/setup-cms chose: its own copy when the system's is older than 20."""
    own = CACHE / "node" / "bin" / "node"
    if own.exists():
        return str(own)
    found = shutil.which("node")
    if not found:
        raise CMSError(f"Node.js not found: {INSTALL_HINT}")
    return found


def require(cms: str) -> Path:
    """The installed app directory of ``cms``; a clear failure when it is missing or incomplete."""
    app = CACHE / cms / "app"
    marker = {"ghost": app / "node_modules" / "knex",
              "strapi": app / "node_modules" / "@strapi" / "strapi",
              "wagtail": CACHE / "wagtail" / "venv" / "bin" / "wagtail"}[cms]
    if not marker.exists():
        raise CMSError(f"{cms} is not installed under {CACHE / cms} ({marker} missing): {INSTALL_HINT}")
    return app


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2,
               proc: Optional[subprocess.Popen] = None, log: Optional[Path] = None):
    """Call ``check`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise CMSError(f"{what}: process exited with {proc.returncode}\n{tail(log)}")
        try:
            result = check()
            if result:
                return result
        except (requests.RequestException, OSError) as exc:
            last = exc
        time.sleep(interval)
    raise CMSError(f"{what}: not done after {timeout:.0f} s (last error: {last})\n{tail(log)}")


def tail(path: Optional[Path], lines: int = 40) -> str:
    if not path or not Path(path).exists():
        return ""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def stop(proc: Optional[subprocess.Popen], timeout: float = 15.0) -> None:
    """SIGTERM the process group, SIGKILL after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def spawn(command, cwd, env, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def base_env() -> dict:
    """The caller's environment without proxies (everything here is loopback) and without PURGEBRIDGE_*."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PURGEBRIDGE_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    node_dir = str(Path(node_binary()).parent)
    env["PATH"] = node_dir + os.pathsep + env.get("PATH", "")
    return env


# --------------------------------------------------------------------------- a recording receiver


class Recorder:
    """A loopback HTTP server that records every request (method, path, headers, body) and answers ``status``.

    Used to capture what a CMS really sends, and as the stand-in relay in
    capture runs. ``wait_for(predicate)`` waits, bounded, for a request.
    """

    def __init__(self, host: str = "127.0.0.1", status: int = 202) -> None:
        self.requests: list = []
        self.status = status
        self.cond = threading.Condition()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                entry = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                         "body": body.decode("utf-8", "replace"), "at": time.time()}
                with recorder.cond:
                    recorder.requests.append(entry)
                    recorder.cond.notify_all()
                answer = b'{"ok": true}'
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_PURGE = do_BAN = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 20.0, since: int = 0) -> list:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [r for r in self.requests[since:] if predicate(r)]
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r["method"], r["path"], r["headers"].get("X-Ghost-Event", "")) for r in self.requests[since:]]
                    raise CMSError(f"no matching request after {timeout:.0f} s; seen: {seen}")
                self.cond.wait(left)

    def quiet(self, seconds: float = 1.0, timeout: float = 20.0) -> None:
        """Wait until no request came for ``seconds`` (a CMS sends some webhooks a moment later)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.cond:
                last = self.requests[-1]["at"] if self.requests else 0
            if time.time() - last >= seconds:
                return
            time.sleep(0.1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- Ghost


def ghost_signature(secret: str, body: bytes, ts_ms: int) -> str:
    """What Ghost sends in X-Ghost-Signature: ``sha256=<hmac(body + t)>, t=<ms>``."""
    digest = hmac.new(secret.encode(), body + str(ts_ms).encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}, t={ts_ms}"


class Served:
    """A CMS process this module started: ``with Cms(...) as cms`` starts it and always stops it."""

    proc: Optional[subprocess.Popen] = None

    def start(self) -> "Served":
        raise NotImplementedError

    def stop(self) -> None:
        stop(self.proc)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Ghost(Served):
    """Ghost 5 (npm) on loopback with SQLite, configured through its Admin API.

    ``site_url`` is the public URL Ghost builds its links with (the Host the
    Varnish nodes are asked for); Ghost listens on 127.0.0.1:``port``.
    Frontend pages carry ``Cache-Control: public, max-age=3600``
    (``caching.frontend.maxAge``), so the nodes cache them.
    """

    EMAIL = "owner@ghost.site.test"
    PASSWORD = "Tq8!vLm2#Zr9-wXc4-Hn7"

    def __init__(self, workdir: Path, site_url: str = "http://ghost.site.test/", port: Optional[int] = None) -> None:
        self.app = require("ghost")
        self.workdir = Path(workdir)
        self.site_url = site_url.rstrip("/") + "/"
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.workdir / "ghost.log"
        self.proc: Optional[subprocess.Popen] = None
        self.session = requests.Session()
        self.session.trust_env = False
        self.admin_key: Optional[str] = None
        self.integration: Optional[dict] = None

    # -- process

    def env(self) -> dict:
        content = self.workdir / "content"
        env = base_env()
        env.update({
            "NODE_ENV": "production",
            "url": self.site_url,
            "server__host": "127.0.0.1",
            "server__port": str(self.port),
            "database__client": "sqlite3",
            "database__connection__filename": str(content / "data" / "ghost.db"),
            "database__useNullAsDefault": "true",
            "paths__contentPath": str(content),
            # nothing but loopback: no update check, gravatar, RPC pings or mail to the world
            "privacy__useTinfoil": "true",
            "updateCheck__enabled": "false",
            "mail__transport": "SMTP",
            "mail__options__host": "127.0.0.1",
            "mail__options__port": str(free_port()),  # nobody listens: a welcome mail just fails
            "mail__options__secure": "false",
            "security__staffDeviceVerification": "false",
            "caching__frontend__maxAge": "3600",
            "logging__level": "warn",
            "logging__transports": '["stdout"]',
            "admin__redirects": "false",
        })
        return env

    def start(self) -> "Ghost":
        content = self.workdir / "content"
        if not content.exists():
            shutil.copytree(self.app / "content", content)
        self.proc = spawn([node_binary(), "index.js"], self.app, self.env(), self.log)
        wait_until(lambda: self.session.get(self.base + "/ghost/api/admin/site/", timeout=5).status_code == 200,
                   START_TIMEOUT, "Ghost start", 0.5, self.proc, self.log)
        return self

    # -- admin: session (setup) and the integration's key

    def _admin(self, method, path, **kw):
        headers = kw.pop("headers", {})
        staff = kw.pop("staff", False)  # as the logged-in owner (its session cookie), not the integration
        headers.setdefault("Origin", self.base)
        headers.setdefault("Accept-Version", "v5.0")
        if self.admin_key and not staff:
            headers.setdefault("Authorization", "Ghost " + self.jwt())
        answer = self.session.request(method, self.base + "/ghost/api/admin" + path, headers=headers,
                                      timeout=HTTP_TIMEOUT, **kw)
        if answer.status_code >= 400:
            raise CMSError(f"Ghost {method} {path}: {answer.status_code} {answer.text[:500]}")
        if "json" not in answer.headers.get("Content-Type", ""):
            return {}  # POST /session/ answers "Created"
        return answer.json()

    def setup_owner(self) -> None:
        """What the first screen of /ghost/ does: create the owner (and log in as them)."""
        self._admin("POST", "/authentication/setup/", json={"setup": [{
            "name": "Owner", "email": self.EMAIL, "password": self.PASSWORD, "blogTitle": "Purgebridge Ghost"}]})
        self._admin("POST", "/session/", json={"username": self.EMAIL, "password": self.PASSWORD})

    def jwt(self) -> str:
        """An Admin API token from the integration's key, as Ghost documents (HS256, aud /admin/, 5 minutes)."""
        key_id, secret = self.admin_key.split(":")
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        now = int(time.time())
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key_id}).encode())
        payload = b64(json.dumps({"iat": now, "exp": now + 300, "aud": "/admin/"}).encode())
        signature = hmac.new(bytes.fromhex(secret), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64(signature)}"

    def add_integration(self, target_url: str, secret: str, events) -> dict:
        """Settings › Integrations › Add custom integration, then one webhook per event with ``secret``."""
        integration = self._admin("POST", "/integrations/?include=api_keys,webhooks", json={
            "integrations": [{"name": "purgebridge"}]})["integrations"][0]
        key = next(k for k in integration["api_keys"] if k["type"] == "admin")
        self.admin_key = key["secret"] if ":" in key["secret"] else f"{key['id']}:{key['secret']}"
        for event in events:
            self._admin("POST", "/webhooks/", json={"webhooks": [{
                "event": event, "target_url": target_url, "name": f"purgebridge {event}",
                "secret": secret, "integration_id": integration["id"]}]})
        self.integration = integration
        return integration

    # -- content, through the Admin API

    def create_post(self, title: str, tags=(), status: str = "published", page: bool = False,
                    html: Optional[str] = None) -> dict:
        kind = "pages" if page else "posts"
        body = {"title": title, "status": status, "tags": [{"name": t} for t in tags],
                "html": html or f"<p>{title}</p>"}
        return self._admin("POST", f"/{kind}/?source=html", json={kind: [body]})[kind][0]

    def edit_post(self, post: dict, page: bool = False, **changes) -> dict:
        kind = "pages" if page else "posts"
        current = self._admin("GET", f"/{kind}/{post['id']}/")[kind][0]
        body = {"updated_at": current["updated_at"], **changes}
        if "tags" in changes:
            body["tags"] = [{"name": t} for t in changes["tags"]]
        return self._admin("PUT", f"/{kind}/{post['id']}/", json={kind: [body]})[kind][0]

    def delete_post(self, post: dict, page: bool = False) -> None:
        kind = "pages" if page else "posts"
        self._admin("DELETE", f"/{kind}/{post['id']}/")

    def edit_settings(self, **settings) -> None:
        """Settings › General (an integration may not change settings: the owner's session does)."""
        self._admin("PUT", "/settings/", staff=True,
                    json={"settings": [{"key": k, "value": v} for k, v in settings.items()]})

    def get(self, path: str) -> requests.Response:
        """A frontend page straight from Ghost, with the site's Host."""
        host = self.site_url.split("//", 1)[1].rstrip("/")
        return self.session.get(self.base + path, headers={"Host": host}, timeout=HTTP_TIMEOUT,
                                allow_redirects=False)


GHOST_EVENTS = (
    "post.added", "post.deleted", "post.edited", "post.published", "post.published.edited", "post.unpublished",
    "page.added", "page.deleted", "page.edited", "page.published", "page.published.edited", "page.unpublished",
    "tag.added", "tag.edited", "tag.deleted", "post.tag.attached", "post.tag.detached",
    "site.changed",
)


# --------------------------------------------------------------------------- Wagtail


class Wagtail(Served):
    """Wagtail 8 (PyPI, its own virtualenv) serving tests/cms/wagtail-project on loopback.

    The site's root is a blog index (``/``, it lists every live post with its
    tags); posts live at ``/<slug>/``. ``purge_location`` is the URL that
    ``wagtail.contrib.frontend_cache``'s HTTPBackend sends its PURGEs to.
    Editing happens through Wagtail's own page API (revisions, publish,
    unpublish, delete) in a fresh ``manage.py shell`` each time, as the admin
    views do it.
    """

    HOST = "wagtail.site.test"

    def __init__(self, workdir: Path, purge_location: Optional[str] = None, port: Optional[int] = None) -> None:
        require("wagtail")
        self.python = str(CACHE / "wagtail" / "venv" / "bin" / "python")
        self.project = REPO / "tests" / "cms" / "wagtail-project"
        self.workdir = Path(workdir)
        self.purge_location = purge_location
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.workdir / "wagtail.log"
        self.proc: Optional[subprocess.Popen] = None

    def env(self) -> dict:
        env = base_env()
        env.update({"WAGTAIL_DATA": str(self.workdir / "data"), "DJANGO_SETTINGS_MODULE": "pbsite.settings",
                    "WAGTAIL_HOSTS": f"{self.HOST},127.0.0.1,localhost", "PYTHONDONTWRITEBYTECODE": "1"})
        env.pop("PYTHONPATH", None)
        if self.purge_location:
            env["PURGE_LOCATION"] = self.purge_location
        return env

    def manage(self, *args: str, timeout: float = 180.0) -> str:
        done = subprocess.run([self.python, "manage.py", *args], cwd=self.project, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise CMSError(f"wagtail manage.py {args[0]}: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        return done.stdout

    def shell(self, code: str) -> Any:
        """Run ``code`` (which sets ``result``) in a Django shell; returns ``result`` as JSON."""
        script = "import json\nresult = None\n" + code + "\nprint('@@RESULT@@' + json.dumps(result))\n"
        out = self.manage("shell", "-c", script)
        for line in out.splitlines():
            if line.startswith("@@RESULT@@"):
                return json.loads(line[len("@@RESULT@@"):])
        raise CMSError(f"wagtail shell printed no result:\n{out[-2000:]}")

    def template_db(self) -> Path:
        """A migrated, set-up database kept in the cache, named by what made it (the project's files)."""
        digest = hashlib.sha256()
        for path in sorted(self.project.rglob("*.py")):
            digest.update(path.read_bytes())
        digest.update(self.SETUP_CODE.encode())
        return CACHE / "wagtail" / f"site-{digest.hexdigest()[:16]}.sqlite3"

    def setup(self) -> None:
        """migrate, then the site: a blog index at the root of ``wagtail.site.test`` (the Settings › Sites screen).

        The result is kept in the cache (``migrate`` takes a minute on 2 cores) and copied for the next run.
        """
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        target = self.workdir / "data" / "wagtail.sqlite3"
        template = self.template_db()
        if template.exists():
            shutil.copyfile(template, target)
            return
        self.manage("migrate", "--no-input", timeout=600)
        self.shell(self.SETUP_CODE)
        with contextlib.suppress(OSError):
            partial = template.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(target, partial)
            os.replace(partial, template)

    SETUP_CODE = """
from wagtail.models import Page, Site
from blog.models import BlogIndex
root = Page.get_first_root_node()
blog = root.add_child(instance=BlogIndex(title="Blog", slug="blog-home"))
site = Site.objects.get(is_default_site=True)
old = site.root_page
site.hostname, site.port, site.root_page, site.site_name = "wagtail.site.test", 80, blog, "Purgebridge Wagtail"
site.save()
if old.id != blog.id:
    old.delete()
result = blog.id
"""

    def start(self) -> "Wagtail":
        if not (self.workdir / "data" / "wagtail.sqlite3").exists():
            self.setup()
        self.proc = spawn([self.python, "manage.py", "runserver", "--noreload", "--nothreading", f"127.0.0.1:{self.port}"],
                          self.project, self.env(), self.log)
        wait_until(lambda: requests.get(self.base + "/", headers={"Host": self.HOST}, timeout=5).status_code == 200,
                   60, "Wagtail start", 0.3, self.proc, self.log)
        return self

    # -- editing, as the admin's views do

    def publish_post(self, title: str, tags=(), body: str = "") -> dict:
        return self.shell(f"""
from blog.models import BlogIndex, BlogPost
index = BlogIndex.objects.first()
post = index.add_child(instance=BlogPost(title={title!r}, body={body or title!r}, live=False))
post.tags.set({list(tags)!r})
post.save_revision().publish()
result = {{"id": post.id, "url": post.full_url, "path": post.url}}
""")

    def edit_post(self, post_id: int, **changes) -> dict:
        sets = "\n".join(f"post.{k} = {v!r}" for k, v in changes.items() if k != "tags")
        tags = f"post.tags.set({list(changes['tags'])!r})" if "tags" in changes else ""
        return self.shell(f"""
from blog.models import BlogPost
post = BlogPost.objects.get(id={post_id}).get_latest_revision_as_object()
{sets}
{tags}
post.save_revision().publish()
post = BlogPost.objects.get(id={post_id})
result = {{"id": post.id, "url": post.full_url, "path": post.url}}
""")

    def unpublish_post(self, post_id: int) -> None:
        self.shell(f"from blog.models import BlogPost\nBlogPost.objects.get(id={post_id}).unpublish()")

    def republish_post(self, post_id: int) -> None:
        self.shell(f"from blog.models import BlogPost\nBlogPost.objects.get(id={post_id}).get_latest_revision().publish()")

    def delete_post(self, post_id: int) -> None:
        self.shell(f"from blog.models import BlogPost\nBlogPost.objects.get(id={post_id}).delete()")

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, headers={"Host": self.HOST}, timeout=HTTP_TIMEOUT, allow_redirects=False)


# --------------------------------------------------------------------------- Strapi


class Strapi(Served):
    """Strapi 5 (npm) on loopback with SQLite, configured through its admin API.

    The project (tests/cms/strapi-project) is copied to ``workdir`` with
    ``node_modules`` linked from the cache, and run with ``strapi develop``
    without the admin panel's bundle: the admin *API* is what an admin's
    screens call, and develop mode is where Strapi lets the Content-Type
    Builder write new types (and where it accepts a loopback webhook URL:
    in production it refuses any URL that resolves to a local address).
    """

    EMAIL = "admin@strapi.site.test"
    PASSWORD = "Purgebridge-strapi-1"

    def __init__(self, workdir: Path, port: Optional[int] = None) -> None:
        self.app = require("strapi")
        self.workdir = Path(workdir)
        self.project = self.workdir / "project"
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.workdir / "strapi.log"
        self.proc: Optional[subprocess.Popen] = None
        self.session = requests.Session()
        self.session.trust_env = False
        self.token: Optional[str] = None
        self.read_token: Optional[str] = None

    def env(self) -> dict:
        env = base_env()
        secret = hashlib.sha256(str(self.workdir).encode()).hexdigest()
        env.update({
            "NODE_ENV": "development", "HOST": "127.0.0.1", "PORT": str(self.port),
            "APP_KEYS": f"{secret[:16]},{secret[16:32]}", "API_TOKEN_SALT": secret[32:48],
            "ADMIN_JWT_SECRET": secret[48:], "TRANSFER_TOKEN_SALT": secret[:24], "JWT_SECRET": secret[24:48],
            "ENCRYPTION_KEY": secret[8:40],
            "DATABASE_FILENAME": str(self.workdir / "data.db"),
            # nothing but loopback: no telemetry, no update notifier, no browser
            "STRAPI_TELEMETRY_DISABLED": "true",
            "STRAPI_HIDE_STARTUP_MESSAGE": "true", "BROWSER": "none", "STRAPI_DISABLE_REMOTE_DATA_TRANSFER": "true",
        })
        return env

    def start(self) -> "Strapi":
        if not self.project.exists():
            shutil.copytree(REPO / "tests" / "cms" / "strapi-project", self.project)
            (self.project / "node_modules").symlink_to(self.app / "node_modules")
            (self.project / "public" / "uploads").mkdir(parents=True, exist_ok=True)
        strapi = str(self.app / "node_modules" / "@strapi" / "strapi" / "bin" / "strapi.js")
        self.proc = spawn([node_binary(), strapi, "develop", "--no-watch-admin", "--no-build-admin",
                           "--no-install-deps"], self.project, self.env(), self.log)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        wait_until(lambda: self.session.get(self.base + "/_health", timeout=5).status_code == 204,
                   timeout, "Strapi start", 0.5, self.proc, self.log)

    def _admin(self, method, path, **kw):
        headers = kw.pop("headers", {})
        if self.token:
            headers.setdefault("Authorization", "Bearer " + self.token)
        answer = self.session.request(method, self.base + path, headers=headers, timeout=HTTP_TIMEOUT, **kw)
        if answer.status_code >= 400:
            raise CMSError(f"Strapi {method} {path}: {answer.status_code} {answer.text[:600]}")
        return answer.json() if answer.content else {}

    # -- what an admin does in the admin panel

    def register_admin(self) -> None:
        """The first screen of /admin: the first administrator."""
        data = self._admin("POST", "/admin/register-admin", json={
            "firstname": "Ada", "lastname": "Admin", "email": self.EMAIL, "password": self.PASSWORD})["data"]
        self.token = data["token"]

    def create_article_type(self) -> None:
        """Content-Type Builder: collection type Article (title, slug from title, body, tags as JSON list).

        Strapi writes src/api/article/ and restarts itself; this waits for the restart.
        """
        self._admin("POST", "/content-type-builder/content-types", json={"contentType": {
            "displayName": "Article", "singularName": "article", "pluralName": "articles",
            "kind": "collectionType", "draftAndPublish": True,
            "attributes": {
                "title": {"type": "string", "required": True},
                "slug": {"type": "uid", "targetField": "title", "required": True},
                "body": {"type": "text"},
                "tags": {"type": "json"},
            }}, "components": []})
        time.sleep(1.0)  # the restart begins after the answer
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                answer = self.session.get(self.base + "/content-manager/content-types",
                                          headers={"Authorization": "Bearer " + self.token}, timeout=5)
                if answer.status_code == 200 and any(t["uid"] == "api::article.article" for t in answer.json()["data"]):
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise CMSError(f"Strapi exited during the restart:\n{tail(self.log)}")
            time.sleep(0.5)
        raise CMSError(f"Strapi did not come back with api::article.article:\n{tail(self.log)}")

    def create_read_token(self) -> str:
        """Settings › API Tokens: a read-only token for the site's frontend."""
        data = self._admin("POST", "/admin/api-tokens", json={
            "name": "frontend", "description": "the site's pages", "type": "read-only", "lifespan": None})["data"]
        self.read_token = data["accessKey"]
        return self.read_token

    def add_webhook(self, url: str, headers: dict, events) -> dict:
        """Settings › Webhooks › Create new webhook."""
        return self._admin("POST", "/admin/webhooks", json={
            "name": "purgebridge", "url": url, "headers": headers, "events": list(events)})["data"]

    # -- content, through the Content Manager's API (what its screens call)

    CM = "/content-manager/collection-types/api::article.article"

    def create_article(self, title: str, tags=(), body: str = "", publish: bool = True) -> dict:
        doc = self._admin("POST", self.CM, json={"title": title, "slug": slugify(title), "body": body or title,
                                                 "tags": list(tags)})["data"]
        if publish:
            doc = self.publish(doc["documentId"])
        return doc

    def update_article(self, document_id: str, publish: bool = True, **changes) -> dict:
        doc = self._admin("PUT", f"{self.CM}/{document_id}", json=changes)["data"]
        if publish:
            doc = self.publish(document_id)
        return doc

    def publish(self, document_id: str) -> dict:
        return self._admin("POST", f"{self.CM}/{document_id}/actions/publish", json={})["data"]

    def unpublish(self, document_id: str) -> dict:
        return self._admin("POST", f"{self.CM}/{document_id}/actions/unpublish", json={})["data"]

    def delete_article(self, document_id: str) -> None:
        self._admin("DELETE", f"{self.CM}/{document_id}")

    # -- the content API, as a site's frontend reads it

    def articles(self, **params) -> list:
        answer = self.session.get(self.base + "/api/articles", params={"sort": "publishedAt:desc", **params},
                                  headers={"Authorization": "Bearer " + self.read_token}, timeout=HTTP_TIMEOUT)
        answer.raise_for_status()
        return answer.json()["data"]


def slugify(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


STRAPI_EVENTS = ("entry.create", "entry.update", "entry.delete", "entry.publish", "entry.unpublish")


# --------------------------------------------------------------------------- loopback only


def _tree(pid: int) -> set:
    """``pid`` and every process below it (from /proc)."""
    parents: dict = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo and len(found) < 10_000:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo.extend(parents.get(p, []))
    return found


def _address(hex_text: str) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_text)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped or address)


def outside_connections(proc: Optional[subprocess.Popen]) -> list:
    """Sockets of the CMS's process tree whose peer is not loopback (TCP in any state, UDP): should be none."""
    import ipaddress

    if proc is None or proc.poll() is not None:
        return []
    inodes = set()
    for pid in _tree(proc.pid):
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[9] not in inodes:
                continue
            host_hex, port_hex = fields[2].split(":")
            peer = _address(host_hex)
            if int(port_hex, 16) == 0 or ipaddress.ip_address(peer).is_loopback or ipaddress.ip_address(peer).is_unspecified:
                continue
            found.append(f"{table} {peer}:{int(port_hex, 16)}")
    return found
