"""A small TCP proxy between kiosk and platform that misbehaves on purpose.

Each accepted connection takes the next fault from a queue (default: forward faithfully):
- "reset_on_response": forward the request, let the platform answer (it has committed), then
  reset the client connection before any byte of the answer reaches it;
- ("cut", n): pass the first n bytes of the answer, then reset;
- ("hold", event): forward, then keep the answer back and signal `event` (for SIGKILL tests);
- ("canned", bytes): do not contact the platform; read the request and answer with these bytes.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
from typing import Any

Fault = Any


def _read_message(conn: socket.socket) -> bytes:
    """One HTTP message (headers + Content-Length body): a request, or a response."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _reset(conn: socket.socket) -> None:
    # SO_LINGER 0: close sends RST, like a dropped 4G link seen from the kiosk.
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.faults: queue.Queue[Fault] = queue.Queue()
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def add(self, *faults: Fault) -> None:
        for fault in faults:
            self.faults.put(fault)

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            try:
                fault = self.faults.get_nowait()
            except queue.Empty:
                fault = None
            threading.Thread(target=self._serve, args=(conn, fault), daemon=True).start()

    def _serve(self, conn: socket.socket, fault: Fault) -> None:
        if isinstance(fault, tuple) and fault[0] == "canned":
            _read_message(conn)
            with contextlib.suppress(OSError):  # the client may hang up on a huge answer
                conn.sendall(fault[1])
            conn.close()
            return
        try:
            up = socket.create_connection(self.upstream)
        except OSError:
            _reset(conn)
            return
        if fault is None:
            self._pipe_both(conn, up)
            return
        # One request, then the fault applies to its answer.
        up.sendall(_read_message(conn))
        up.settimeout(60)
        answer = _read_message(up)  # complete: the platform has committed by now
        if fault == "reset_on_response":
            up.close()
            _reset(conn)
        elif fault[0] == "cut":
            conn.sendall(answer[: fault[1]])
            up.close()
            _reset(conn)
        elif fault[0] == "hold":
            fault[1].set()
            self._stop.wait()  # never answer; the client is killed meanwhile
            up.close()
            _reset(conn)

    def _pipe_both(self, a: socket.socket, b: socket.socket) -> None:
        def pump(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while chunk := src.recv(65536):
                    dst.sendall(chunk)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=pump, args=(b, a), daemon=True)
        t.start()
        pump(a, b)
        t.join()
        a.close()
        b.close()
