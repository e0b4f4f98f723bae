"""A TCP relay in front of the test S3 server that can stop one request in flight.

Every client (boto3, s3fs, pyarrow in Ray's workers) pointed at the relay's endpoint talks to
the real S3 server behind it, byte for byte. The relay reads each request line going to the
server; when `hold(method, path)` says so, it forwards the bytes before that request and no more
on that connection: the request is left in flight (the server waits for it, the client for an
answer), as an upload is when its process dies mid-way. Used by the fault tests to kill a
driver while a checkpoint file is being uploaded, with no test hook in the code under test.
With `drop_conditions` it removes If-Match / If-None-Match headers on the way: a server without
conditional writes; with `cut` one request is done but its answer lost (tests/test_lease_object.py).

    with HoldingProxy(s3_server.endpoint, hold=lambda m, p: m == "PUT" and p.endswith("/x")) as proxy:
        env["AWS_ENDPOINT_URL"] = proxy.endpoint
        ...
        proxy.held.wait(60)       # a PUT of .../x is in flight and stays so
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

__all__ = ["HoldingProxy"]

_REQUEST = re.compile(rb"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/1\.[01]\r\n")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # the answer to `Expect: 100-continue`
_CONDITION = re.compile(rb"(?im)^if-(none-)?match: [^\r\n]*\r\n")


class HoldingProxy:
    """A relay 127.0.0.1:PORT -> `upstream` (http://host:port) that holds the first request
    for which `hold(method, path)` is true (`path`: the URL path, unquoted, no query)."""

    def __init__(self, upstream: str, hold: Callable[[str, str], bool] | None = None,
                 drop_conditions: bool = False, cut: Callable[[str, str], bool] | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.hold = hold
        self.drop_conditions = drop_conditions
        """Remove If-Match / If-None-Match headers: a server that ignores conditional writes."""
        self.cut = cut
        """The first request for which `cut(method, path)` is true reaches the server, but its
        answer never reaches the client: the connection is closed instead (a lost response)."""
        self.was_cut = threading.Event()
        self.held = threading.Event()
        """Set once a request is being held."""
        self.held_request: tuple[str, str] | None = None
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request relayed or held, in order."""
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._closing = False

    def __enter__(self) -> "HoldingProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            cutting = threading.Event()  # this connection's next answer is lost
            threading.Thread(target=self._upstream, args=(client, server, cutting), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, cutting), daemon=True).start()

    def _held_here(self, method: str, path: str) -> bool:
        with self._lock:
            self.requests.append((method, path))
            if self.held.is_set() or self.hold is None or not self.hold(method, path):
                return False
            self.held_request = (method, path)
            self.held.set()
            return True

    def _cut_here(self, method: str, path: str) -> bool:
        with self._lock:
            if self.was_cut.is_set() or self.cut is None or not self.cut(method, path):
                return False
            self.was_cut.set()
            return True

    def _upstream(self, client: socket.socket, server: socket.socket, cutting: threading.Event) -> None:
        """Client -> server, watching request lines (a line split over two reads is found in
        the carried-over tail)."""
        tail, holding = b"", False
        try:
            while data := client.recv(65536):
                if holding:
                    continue  # swallowed: the request stays in flight until the client dies
                buf, start = tail + data, len(tail)
                for match in _REQUEST.finditer(buf):
                    if match.end() <= start:
                        continue  # seen in the previous read
                    method, path = match.group(1).decode(), unquote(urlsplit(match.group(2).decode()).path)
                    if self._held_here(method, path):
                        holding = True
                        data = buf[start:max(start, match.start())]
                        break
                    if self._cut_here(method, path):
                        cutting.set()  # before the request goes: its answer comes after
                if self.drop_conditions:  # small requests (the lease's) come in one read
                    data = _CONDITION.sub(b"", data)
                server.sendall(data)
                tail = buf[-300:]
        except OSError:
            pass
        finally:
            for sock in (client, server):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, cutting: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if cutting.is_set() and data.startswith(_CONTINUE):  # interim: the body follows
                    dst.sendall(_CONTINUE)
                    data = data[len(_CONTINUE):]
                    if not data:
                        continue
                if cutting.is_set():  # the answer to the cut request: lost, connection closed
                    for sock in (src, dst):
                        sock.shutdown(socket.SHUT_RDWR)
                    return
                dst.sendall(data)
        except OSError:
            pass
