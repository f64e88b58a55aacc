"""Real processes on loopback: a tiny origin and varnishd nodes in front of it.

Used by the integration tests, ``purgebridge demo`` and the benchmarks, so
that purges are tested against the real thing rather than a mock:

- :func:`start_origin` -- a stdlib threading HTTP server that counts hits per
  (Host, path) and sends cacheable pages;
- :func:`render_vcl` -- puts the origin's address and a purge acl into a VCL
  that marks its site region with two comment lines;
- :func:`start_varnish` -- one ``varnishd -F`` with its own ``-n`` workdir;
- :func:`start_cluster` -- an origin and several nodes on one free port.

Everything binds to loopback only and every network call has a timeout.
varnishd is run with ``-j none`` (no privilege separation: the processes stay
with the caller's user, so a root test run needs no file permission games)
and ``-T none`` (no admin CLI: nothing here needs it).
"""

from dataclasses import dataclass, field
import contextlib
import http.client
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from urllib.parse import parse_qs, urlsplit

from purgebridge.core.nodes import Node

log = logging.getLogger(__name__)

# The VCL files are package data (a copy of the checkout's vcl/, kept equal by release/sync-vcl.sh and
# tests/unit/test_package_data.py), so the demo and the cluster work from an installed wheel.
VCL_DIR = Path(__file__).resolve().parent.parent / "vcl"
SITE_BEGIN = "# >>> purgebridge site: backend and acl"
SITE_END = "# <<< purgebridge site"
DEFAULT_HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
DEFAULT_ACL = ('"127.0.0.0"/8', '"::1"')


class LocalClusterError(RuntimeError):
    """A local origin or varnishd could not be set up; the message says why."""


# --------------------------------------------------------------------------- origin


class _OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "purgebridge-origin/1"

    def log_message(self, fmt, *args):  # keep test output quiet
        log.debug("origin: " + fmt, *args)

    def _answer(self, with_body):
        origin = self.server.origin
        host = self.headers.get("Host", "")
        target = self.path
        split = urlsplit(target)
        query = parse_qs(split.query)
        probe = query.get("purgebridge-probe")
        if probe is not None:
            failing = origin.probe_fail.get(probe[0])
            status = 503 if failing else 200
            body = b"probe failing\n" if failing else b"probe ok\n"
            origin._record(host, target)
            self._send(status, body, with_body, cacheable=False)
            return
        count = origin._record(host, target)
        body = (
            "<!doctype html>\n<html><head><title>%s</title></head>\n"
            "<body><h1>%s</h1><p>host %s, served %d time(s) for this path</p></body></html>\n"
            % (_html(split.path), _html(target), _html(host), count)
        ).encode()
        extra = {}
        if "xkey" in query:
            keys = [k for part in query["xkey"] for k in part.split(",") if k]
            extra["xkey"] = " ".join(keys)
        self._send(200, body, with_body, cacheable=True, extra=extra)

    def _send(self, status, body, with_body, cacheable, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "public, max-age=3600" if cacheable else "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):
        self._answer(True)

    def do_HEAD(self):
        self._answer(False)


def _html(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _OriginServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class Origin:
    """A running origin. ``hits`` maps (Host header, request-target) to a count.

    Set ``probe_fail["N"] = True`` to make ``/?purgebridge-probe=N`` answer 503.
    """

    host: str
    port: int
    hits: dict = field(default_factory=dict)
    probe_fail: dict = field(default_factory=dict)
    _server: object = None
    _thread: object = None
    _lock: object = field(default_factory=threading.Lock)

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _record(self, host, target):
        with self._lock:
            key = (host, target)
            self.hits[key] = self.hits.get(key, 0) + 1
            return sum(n for (_h, t), n in self.hits.items() if t == target)

    def hit_count(self, host, target):
        """How often the origin served ``target`` for ``Host: host``."""
        with self._lock:
            return self.hits.get((host, target), 0)

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None


def start_origin(host="127.0.0.1", port=0):
    """Start the origin in a daemon thread and return its :class:`Origin`."""
    server_cls = _OriginServer
    if ":" in host:
        server_cls = type("_OriginServer6", (_OriginServer,), {"address_family": socket.AF_INET6})
    server = server_cls((host, port), _OriginHandler)
    origin = Origin(host=host, port=server.server_address[1])
    server.origin = origin
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"origin-{origin.port}", daemon=True)
    origin._server, origin._thread = server, thread
    thread.start()
    log.debug("origin listening on %s", origin.url)
    return origin


# --------------------------------------------------------------------------- VCL


def _acl_line(entry):
    """``"127.0.0.0/8"`` -> ``"127.0.0.0"/8;``; entries already quoted pass through."""
    text = entry.strip().rstrip(";")
    negated = ""
    if text.startswith("!"):
        negated, text = "!", text[1:].strip()
    if text.startswith(("\"", "(")):
        return f"{negated}{text};"
    if "/" in text:
        addr, mask = text.split("/", 1)
        return f'{negated}"{addr}"/{int(mask)};'
    return f'{negated}"{text}";'


def render_vcl(vcl_path, backend_host, backend_port, acl_entries):
    """Return the VCL at ``vcl_path`` with its site region filled in.

    The region is everything between the exact lines ``SITE_BEGIN`` and
    ``SITE_END``; it becomes ``backend default`` pointing at the origin and
    the region's acl (``purge`` unless the region names another) with ``acl_entries`` (``"127.0.0.1"``, ``"127.0.0.0/8"``,
    ``"!127.0.0.5"`` or already-quoted VCL such as ``'"::1"'``).
    """
    text = Path(vcl_path).read_text(encoding="utf-8")
    lines = text.splitlines()
    stripped = [line.rstrip() for line in lines]
    try:
        begin = stripped.index(SITE_BEGIN)
        end = stripped.index(SITE_END, begin + 1)
    except ValueError:
        raise LocalClusterError(
            f"{vcl_path}: needs the marker lines {SITE_BEGIN!r} and {SITE_END!r} "
            "around its backend and acl") from None
    acl = "\n".join("    " + _acl_line(e) for e in acl_entries)
    acl_name = _region_acl_name(vcl_path, "\n".join(lines[begin + 1:end]))
    region = [
        SITE_BEGIN,
        "backend default {",
        f'    .host = "{backend_host}";',
        f'    .port = "{int(backend_port)}";',
        "}",
        "",
        f"acl {acl_name} {{",
        acl,
        "}",
        SITE_END,
    ]
    return "\n".join(lines[:begin] + region + lines[end + 1:]) + "\n"


def _region_acl_name(vcl_path, region_text):
    """The name of the acl the VCL's own site region defines ("purge" if none).

    Keeping the VCL's name means its ``client.ip ~ <name>`` checks still work.
    """
    from purgebridge.core.errors import VCLParseError
    from purgebridge.config.vcl_acl import parse_acls

    try:
        names = list(parse_acls(region_text, str(vcl_path)))
    except VCLParseError as exc:
        raise LocalClusterError(f"site region of {vcl_path}: {exc}") from None
    if len(names) > 1:
        raise LocalClusterError(f"site region of {vcl_path} defines several acls ({', '.join(names)}); "
                                "expected one")
    return names[0] if names else "purge"


def has_site_markers(vcl_path):
    try:
        lines = [line.rstrip() for line in Path(vcl_path).read_text(encoding="utf-8").splitlines()]
    except OSError:
        return False
    return SITE_BEGIN in lines and SITE_END in lines[lines.index(SITE_BEGIN):]


def default_vcl_path():
    """The packaged wordpress.vcl when it has the site markers, else the packaged test VCL (no xkey needed)."""
    production = VCL_DIR / "wordpress.vcl"
    if has_site_markers(production):
        return production
    return VCL_DIR / "relay-test.vcl"


# --------------------------------------------------------------------------- varnishd


def find_varnishd():
    """Path of varnishd (Debian puts it in /usr/sbin, not always on PATH) or None."""
    extra = os.pathsep.join(["/usr/sbin", "/usr/local/sbin"])
    return shutil.which("varnishd", path=os.environ.get("PATH", "") + os.pathsep + extra)


def varnishd_missing_message():
    return ("varnishd not found (looked on PATH, /usr/sbin, /usr/local/sbin): "
            "install Debian's varnish package, e.g. `apt-get install -y varnish`")


def _netloc(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _http_once(host, port, method, path, headers=None, timeout=5.0):
    """One HTTP/1.1 request on a fresh connection: (status, headers dict lower-cased, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, headers=dict(headers or {}))
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


class VarnishNode:
    """One varnishd process listening on ``host:port``; stop/start keep the address."""

    PARAMS = (
        ("thread_pools", "1"),
        ("thread_pool_min", "20"),
        ("thread_pool_max", "500"),
        ("default_grace", "0"),
        ("ban_lurker_age", "1"),
    )

    def __init__(self, host, port, vcl_text, workdir, extra_params=(), vcl_dir=None,
                 start_timeout=30.0):
        self.host = host
        self.port = int(port)
        self.workdir = Path(workdir)
        self.extra_params = tuple(extra_params)
        self.vcl_dir = Path(vcl_dir) if vcl_dir else None
        self.start_timeout = start_timeout
        self.proc = None
        self.varnishd = find_varnishd()
        if not self.varnishd:
            raise LocalClusterError(varnishd_missing_message())
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.vcl_file = self.workdir / "site.vcl"
        self.vcl_file.write_text(vcl_text, encoding="utf-8")
        self.log_file = self.workdir / "varnishd.log"
        self.instance_dir = self.workdir / "n"

    @property
    def node(self):
        return Node(host=self.host, port=self.port)

    @property
    def name(self):
        return _netloc(self.host, self.port)

    @property
    def url(self):
        return f"http://{self.name}"

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def command(self):
        vcl_path = [str(self.vcl_dir)] if self.vcl_dir else []
        vcl_path += ["/etc/varnish", "/usr/share/varnish/vcl"]
        cmd = [
            self.varnishd, "-F", "-j", "none", "-T", "none",
            "-n", str(self.instance_dir),
            "-a", self.name,
            "-f", str(self.vcl_file),
            "-s", "malloc,32m",
            "-l", "16m",
            "-i", f"purgebridge-{self.host}-{self.port}",
            "-p", "vcl_path=" + ":".join(vcl_path),
        ]
        for name, value in self.PARAMS:
            cmd += ["-p", f"{name}={value}"]
        for param in self.extra_params:
            cmd += ["-p", param]
        return cmd

    def start(self):
        """Start varnishd and wait until it answers HTTP on its address."""
        if self.running:
            return self
        cmd = self.command()
        log.debug("starting %s", " ".join(cmd))
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise LocalClusterError(
                    f"varnishd on {self.name} exited with status {code} during start-up:\n{self.log_tail()}")
            try:
                status, _h, _b = _http_once(self.host, self.port, "GET", "/__purgebridge_ready",
                                            {"Host": "purgebridge-ready.invalid"}, timeout=1.0)
                log.debug("varnishd %s ready (status %s)", self.name, status)
                return self
            except (OSError, http.client.HTTPException) as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.1)
        self.stop()
        raise LocalClusterError(
            f"varnishd on {self.name} did not answer HTTP within {self.start_timeout}s ({last}):\n{self.log_tail()}")

    def stop(self, timeout=10.0):
        """SIGTERM, wait, then SIGKILL the process group if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        # the cache child is in the same session; make sure it is gone too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no varnishd log)"

    def get(self, path, host_header, headers=None, timeout=5.0):
        """GET ``path`` through this node: (status, lower-cased headers, body)."""
        hdrs = {"Host": host_header}
        hdrs.update(headers or {})
        return _http_once(self.host, self.port, "GET", path, hdrs, timeout=timeout)

    def __repr__(self):
        return f"VarnishNode({self.name}, running={self.running})"


def start_varnish(host, port, vcl_text, workdir, extra_params=(), vcl_dir=None):
    """Start one varnishd on ``host:port`` with ``vcl_text``; returns a running :class:`VarnishNode`."""
    return VarnishNode(host, port, vcl_text, workdir, extra_params, vcl_dir=vcl_dir).start()


def cache_status(headers):
    """HIT or MISS from a response's headers: X-Cache if the VCL sets it, else X-Varnish.

    X-Varnish carries two transaction ids on a hit and one on a miss.
    """
    if "x-cache" in headers:
        return headers["x-cache"]
    xv = headers.get("x-varnish", "")
    if not xv:
        return None
    return "HIT" if len(xv.split()) > 1 else "MISS"


def xcache(node, path, host_header, headers=None, timeout=5.0):
    """GET ``path`` with ``Host: host_header`` through ``node``; its HIT/MISS."""
    target = node.node if isinstance(node, VarnishNode) else node
    hdrs = {"Host": host_header}
    hdrs.update(headers or {})
    _status, resp_headers, _body = _http_once(target.host, target.port, "GET", path, hdrs, timeout=timeout)
    return cache_status(resp_headers)


# --------------------------------------------------------------------------- cluster


def _bindable(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(hosts, preferred=None, attempts=200):
    """A TCP port free on every host in ``hosts`` (``preferred`` first if free)."""
    if preferred and all(_bindable(h, preferred) for h in hosts):
        return preferred
    first = hosts[0]
    family = socket.AF_INET6 if ":" in first else socket.AF_INET
    for _ in range(attempts):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((first, 0))
            port = sock.getsockname()[1]
        if all(_bindable(h, port) for h in hosts):
            return port
    raise LocalClusterError(f"no TCP port free on all of {', '.join(hosts)} after {attempts} tries")


class Cluster:
    """An origin and varnishd nodes in front of it. Use as a context manager."""

    def __init__(self, origin, nodes, vcl_path, workdir, own_origin, own_workdir):
        self.origin = origin
        self.nodes = nodes
        self.vcl_path = Path(vcl_path)
        self.workdir = Path(workdir)
        self._own_origin = own_origin
        self._own_workdir = own_workdir
        self.extra_nodes = []

    @property
    def port(self):
        return self.nodes[0].port if self.nodes else None

    def node_list(self):
        """The nodes as :class:`purgebridge.core.nodes.Node`, for settings and fan-out."""
        return [n.node for n in self.nodes]

    def nodes_env(self):
        """Value for ``PURGEBRIDGE_NODES``."""
        return ",".join(n.name for n in self.nodes)

    def add_node(self, host, acl=DEFAULT_ACL, port=None, extra_params=(), vcl_path=None):
        """Start one more node (e.g. with an acl that refuses us, or another VCL); stopped with the cluster."""
        port = port or free_port([host])
        vcl_path = Path(vcl_path) if vcl_path else self.vcl_path
        vcl_text = render_vcl(vcl_path, self.origin.host, self.origin.port, acl)
        node = start_varnish(host, port, vcl_text, self.workdir / f"node-{host}-{port}",
                             extra_params, vcl_dir=vcl_path.parent)
        self.extra_nodes.append(node)
        return node

    def warm(self, url_paths, host_header, headers=None):
        """GET every path through every node; returns {(node name, path): HIT/MISS}."""
        seen = {}
        for node in self.nodes:
            for path in url_paths:
                status, resp_headers, _body = node.get(path, host_header, headers)
                if status != 200:
                    raise LocalClusterError(f"warming {path} on {node.name}: status {status}")
                seen[(node.name, path)] = cache_status(resp_headers)
        return seen

    def xcache(self, node, path, host_header, headers=None):
        return xcache(node, path, host_header, headers)

    def stop(self):
        for node in self.extra_nodes + self.nodes:
            try:
                node.stop()
            except Exception:  # keep stopping the others
                log.exception("stopping %s", node.name)
        if self._own_origin and self.origin is not None:
            self.origin.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_cluster(vcl_path=None, hosts=DEFAULT_HOSTS, port=None, origin=None, acl=DEFAULT_ACL,
                  workdir=None, extra_params=()):
    """Start ``origin`` (or a new one) and one varnishd per host, all on one port.

    ``vcl_path`` defaults to :func:`default_vcl_path`; ``port`` None picks one
    free on every host. On any failure everything started so far is stopped.
    """
    vcl_path = Path(vcl_path) if vcl_path else default_vcl_path()
    hosts = tuple(hosts)
    own_workdir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="purgebridge-cluster-")) if own_workdir else Path(workdir)
    own_origin = origin is None
    origin = origin or start_origin()
    cluster = Cluster(origin, [], vcl_path, workdir, own_origin, own_workdir)
    try:
        if not find_varnishd():
            raise LocalClusterError(varnishd_missing_message())
        vcl_text = render_vcl(vcl_path, origin.host, origin.port, acl)
        port = port or free_port(hosts)
        for host in hosts:
            node = VarnishNode(host, port, vcl_text, workdir / f"node-{host}-{port}", extra_params,
                               vcl_dir=vcl_path.parent)
            cluster.nodes.append(node)
            node.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
