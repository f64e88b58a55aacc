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
- ``("raw", b"...", close)``      write these bytes as the answer (in pieces of ``piece`` bytes when
                                  the server was made with one), then close when ``close`` is true
"""

import socket
import struct
import threading
import time

import pytest


class FaultServer:
    def __init__(self, script, host="127.0.0.1", piece=0):
        self.script = script
        self.piece = piece
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
                elif kind == "raw":
                    self._write(conn, action[1])
                    if action[2]:
                        return
                elif kind == "garbage":
                    conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
                    return
        except OSError:
            return
        finally:
            conn.close()

    def _write(self, conn, data):
        """Send ``data``; in ``piece``-byte writes with TCP_NODELAY so the reader sees odd splits."""
        if not self.piece:
            conn.sendall(data)
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for at in range(0, len(data), self.piece):
            conn.sendall(data[at:at + self.piece])
            time.sleep(0.0005)

    def stop(self):
        self.stopped = True
        self.sock.close()
        self.thread.join(timeout=2)


@pytest.fixture
def fault_server():
    """Factory: ``fault_server(script)`` starts a FaultServer, stopped after the test."""
    made = []

    def make(script, piece=0):
        server = FaultServer(script, piece=piece)
        made.append(server)
        return server
    yield make
    for server in made:
        server.stop()
