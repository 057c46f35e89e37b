"""The witness's HTTP server: stdlib `ThreadingHTTPServer`, two endpoints.

- `POST /add-checkpoint` (C2SP tlog-witness), answered by `Witness.add_checkpoint`;
- `GET /latest?origin=<origin>`: the latest cosigned checkpoint of a log, for monitors
  and `audit verify` (the spec leaves monitor retrieval open; this is ours).

The protocol is a handful of small text requests, so the standard library's threaded
server is enough: no framework, nothing to keep patched beyond Python. Put TLS in front
(an ingress or a sidecar) where the network is not trusted; the witness's answers are
signed, so TLS protects availability and privacy, not integrity.
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from audit.witness.protocol import MAX_REQUEST_BYTES, Reply, Witness

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server_version = "customer-vault-witness"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    # An idle or trickling connection is dropped: each holds a thread.
    timeout = 30
    witness: Witness

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/add-checkpoint":
            self._send(Reply(404, b"not found\n"))
            return
        length = self.headers.get("Content-Length")
        if length is None or not (length.isascii() and length.isdigit()):
            self._send(Reply(411, b"Content-Length required\n"))
            return
        if int(length) > MAX_REQUEST_BYTES:
            self._send(Reply(413, b"request too large\n"))
            self.close_connection = True
            return
        self._send(self.witness.add_checkpoint(self.rfile.read(int(length))))

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/healthz":
            self._send(Reply(200, b"ok\n"))
            return
        origins = parse_qs(parts.query).get("origin", [])
        if parts.path != "/latest" or len(origins) != 1:
            self._send(Reply(404, b"not found\n"))
            return
        self._send(self.witness.latest(origins[0]))

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status, HTTPStatus(reply.status).phrase)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        # Paths and status codes only; request bodies are never logged.
        log.info("witness %s %s", self.address_string(), format % args)


class WitnessServer:
    """A running witness: `start()` serves in a thread, `serve_forever()` in this one."""

    def __init__(self, witness: Witness, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"witness": witness})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="witness-http", daemon=True
        )
        self._thread.start()

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
