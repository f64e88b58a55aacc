#!/usr/bin/env python3
"""Tiny stand-in origin for degrade.vtc: serves the load probe and plain pages.

Why: the degradation levels are driven by Varnish probes against
``/?purgebridge-probe=2`` and ``/?purgebridge-probe=3``. A varnishtest server
cannot change its answer over time, so this process reads the wanted probe
answer from a file that the .vtc rewrites between phases.

Usage: origin_standin.py STATE_DIR

- binds 127.0.0.1 on a free port and writes it to STATE_DIR/port
- probe N answers according to STATE_DIR/probeN: "200" (default), "503",
  or "slow" (answers 200 after 1.5 s, i.e. after the probe timed out)
- any other path answers 200 "page <path> n=<count>"; /dynamic/ adds
  "Cache-Control: private" and a Set-Cookie, like a personalised page
- exits by itself after MAX_LIFETIME seconds, so it can never linger
"""

import http.server
import os
import sys
import threading
import time
from collections import Counter
from urllib.parse import parse_qs, urlsplit

MAX_LIFETIME = 120.0
SLOW_SECONDS = 1.5


def make_handler(state_dir, counts, lock):
    """Build the request handler class bound to one state directory."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # keep the vtc log readable
            with open(os.path.join(state_dir, "requests.log"), "a") as log:
                log.write("%s\n" % (fmt % args))

        def _probe_state(self, level):
            try:
                with open(os.path.join(state_dir, "probe%s" % level)) as f:
                    return f.read().strip() or "200"
            except FileNotFoundError:
                return "200"

        def _send(self, status, body, headers=()):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_GET(self):
            parts = urlsplit(self.path)
            level = parse_qs(parts.query).get("purgebridge-probe", [None])[0]
            if level in ("2", "3"):
                state = self._probe_state(level)
                if state == "slow":
                    time.sleep(SLOW_SECONDS)
                    self._send(200, "ok (late)\n")
                elif state == "503":
                    self._send(503, "overloaded\n")
                else:
                    self._send(200, "ok\n")
                return
            with lock:
                counts[parts.path] += 1
                n = counts[parts.path]
            headers = []
            if parts.path == "/dynamic/":
                headers = [("Cache-Control", "private"),
                           ("Set-Cookie", "session=%d" % n)]
            seen = self.headers.get("Cookie", "-")
            self._send(200, "page %s n=%d cookie=%s" % (parts.path, n, seen), headers)

        do_HEAD = do_GET

    return Handler


def main(argv):
    state_dir = argv[1]
    os.makedirs(state_dir, exist_ok=True)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), make_handler(state_dir, Counter(), threading.Lock()))
    server.daemon_threads = True
    tmp = os.path.join(state_dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, os.path.join(state_dir, "port"))
    timer = threading.Timer(MAX_LIFETIME, server.shutdown)
    timer.daemon = True
    timer.start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
