"""A local HTTP/1.1 server that misbehaves on purpose, for transport tests.

Real varnishd cannot easily be made to reset a connection mid-pipeline or
answer half a response; this server can. ``script(n, request_line)`` decides
what happens to the n-th request overall (0-based) and returns one of:

- ``("status", 200)``            a complete answer with that status
- ``("status", 200, {"Connection": "close"})``  with extra headers
- ``("sleep", 0.5, 200)``        wait, then answer
- ``("reset",)``                 close the socket with RST (SO_LINGER 0)
- ``("close",)``                 close the socket cleanly, no answer
- ``("half",)``                  write half a response and close
- ``("garbage",)``               answer with bytes that are not HTTP
"""

import socket
import struct
import threading
import time

import pytest


class FaultServer:
    def __init__(self, script, host="127.0.0.1"):
        self.script = script
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)  # here, not in the thread: stop() may close the socket before it runs
        self.host, self.port = self.sock.getsockname()
        self.count = 0
        self.requests = []
        self.connections = 0
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        conn.settimeout(5)
        try:
            while not self.stopped:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                raw, buf = buf.split(b"\r\n\r\n", 1)
                line = raw.split(b"\r\n", 1)[0].decode("latin-1")
                with self.lock:
                    n = self.count
                    self.count += 1
                    self.requests.append(raw.decode("latin-1"))
                action = self.script(n, line)
                kind = action[0]
                if kind == "sleep":
                    time.sleep(action[1])
                    action = ("status", action[2])
                    kind = "status"
                if kind == "status":
                    extra = action[2] if len(action) > 2 else {}
                    body = f"status {action[1]}\n".encode()
                    head = f"HTTP/1.1 {action[1]} X\r\nContent-Length: {len(body)}\r\n"
                    head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                    conn.sendall(head.encode() + b"\r\n" + body)
                    if "close" in extra.get("Connection", ""):
                        return
                elif kind == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                elif kind == "close":
                    return
                elif kind == "half":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
                    return
                elif kind == "garbage":
                    conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
                    return
        except OSError:
            return
        finally:
            conn.close()

    def stop(self):
        self.stopped = True
        self.sock.close()
        self.thread.join(timeout=2)


@pytest.fixture
def fault_server():
    """Factory: ``fault_server(script)`` starts a FaultServer, stopped after the test."""
    made = []

    def make(script):
        server = FaultServer(script)
        made.append(server)
        return server
    yield make
    for server in made:
        server.stop()
