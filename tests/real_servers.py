"""Real servers on 127.0.0.1, free ports, for the sink tests (no mocks)."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookServer:
    """A stdlib HTTP server that records what it receives, fails the next N requests with 500, or stalls
    every request until released."""

    def __init__(self):
        self.received: list[dict] = []
        self.headers: list[dict] = []
        self.fail_next = 0
        self.release = threading.Event()
        self.release.set()
        self.stalled = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with server._lock:
                    failing = server.fail_next > 0
                    server.fail_next -= failing
                if not server.release.is_set():
                    server.stalled.set()
                    server.release.wait(30)
                if failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with server._lock:
                    server.received.append(json.loads(body))
                    server.headers.append(dict(self.headers))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ingest"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def rows(self) -> list[dict]:
        with self._lock:
            return [row for body in self.received for row in body["readings"]]

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
