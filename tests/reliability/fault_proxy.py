"""A fault-injecting HTTP proxy for tests: a real socket server (in a thread) in front of an upstream HTTP server
(moto's S3) that fails a set fraction of requests in one of four ways:

- ``slow_down``: 503 with S3's ``SlowDown`` error (throttling), the request never reaches S3;
- ``internal_error``: 500 with S3's ``InternalError``, the request never reaches S3;
- ``drop``: the connection is closed without an answer, the request never reaches S3;
- ``cut``: S3 serves the request, but the answer is cut off half way through its body (or, with no body,
  dropped entirely): the client cannot tell whether a write happened.

Deterministic by seed: whether the n-th request the proxy receives fails, and how, is drawn from a hash of
(seed, n). Threads may send requests in another order from run to run; the number and kinds of faults stay the
same. One request (method and path) fails at most ``max_faults_per_request`` times, so a client that retries that
often always gets through.
"""

from __future__ import annotations

import hashlib
import http.client
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = ("slow_down", "internal_error", "drop", "cut")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"}
ERRORS = {
    "slow_down": (503, "SlowDown", "Please reduce your request rate."),
    "internal_error": (500, "InternalError", "We encountered an internal error. Please try again."),
}


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        fraction: float,
        seed: int = 0,
        faults: tuple[str, ...] = FAULTS,
        max_faults_per_request: int = 3,
        delay_s: float = 0.0,
    ) -> None:
        """``delay_s``: every request waits that long first (a slow network)."""
        assert 0 <= fraction <= 1 and set(faults) <= set(FAULTS)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.fraction, self.seed, self.faults, self.max_faults = fraction, seed, faults, max_faults_per_request
        self.delay_s = delay_s
        self.injected: Counter[str] = Counter()  # fault kind -> times injected
        self.requests = 0
        self._faulted: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def draw(self, method: str, path: str) -> str | None:
        """The fault for this attempt of ``method path``, or None to serve it."""
        key = f"{method} {path}"
        with self._lock:
            number = self.requests
            self.requests += 1
            if self._faulted[key] >= self.max_faults:
                return None
            digest = hashlib.sha256(f"{self.seed}|{number}".encode()).digest()
            if int.from_bytes(digest[:8]) / 2**64 >= self.fraction:
                return None
            fault = self.faults[int.from_bytes(digest[8:12]) % len(self.faults)]
            self._faulted[key] += 1
            self.injected[fault] += 1
            return fault


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and Expect: 100-continue, as boto3 uses them

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
            pass

        def _relay(self) -> None:
            body = self._read_body()
            time.sleep(proxy.delay_s)
            fault = proxy.draw(self.command, self.path)
            if fault == "drop":
                self.close_connection = True
                return
            if fault in ERRORS:
                self._send_error(*ERRORS[fault])
                return
            status, headers, data = self._forward(body)
            if fault == "cut":  # announce the whole body, send half of it (nothing when there is no body)
                if data and self.command != "HEAD":
                    self._send(status, headers, data[: len(data) // 2], announced=len(data))
                self.close_connection = True
                return
            self._send(status, headers, data)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _relay

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            connection = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
                return response.status, kept, data
            finally:
                connection.close()

        def _send(self, status: int, headers: list[tuple[str, str]], data: bytes, announced: int | None = None) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() in ("server", "date"):  # send_response adds the proxy's own
                    continue
                if name.lower() != "content-length" or self.command == "HEAD":  # HEAD: the object's length
                    self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data) if announced is None else announced))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _send_error(self, status: int, code: str, message: str) -> None:
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                "<RequestId>em3-fault-proxy</RequestId></Error>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(xml)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(xml)

    return Handler
