"""HTTP webhook: POST batches of readings as JSON (optionally gzip) with an optional bearer token."""

from __future__ import annotations

import gzip
import json
import urllib.request

from battsim.sinks.config import WebhookConfig
from battsim.sinks.worker import SinkWorker


def encode_rows(rows: list[dict], compress: bool) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"readings": rows}, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if compress:
        body = gzip.compress(body, compresslevel=1)  # level 1: most of the saving for a fraction of the CPU
        headers["Content-Encoding"] = "gzip"
    return body, headers


class WebhookSink:
    """Queues lists of reading dicts; a worker thread POSTs each list as one request."""

    def __init__(self, config: WebhookConfig, name: str = "webhook"):
        self.config = config
        self.worker = SinkWorker(name, self._post, len, capacity=config.queue_batches,
                                 max_retries=config.max_retries, backoff_s=config.backoff_s)

    def send(self, rows: list[dict]) -> None:
        for start in range(0, len(rows), self.config.batch_rows):
            self.worker.put(rows[start:start + self.config.batch_rows])

    def close(self, timeout_s: float = 10.0) -> None:
        self.worker.close(timeout_s)

    def _post(self, rows: list[dict]) -> None:
        body, headers = encode_rows(rows, self.config.gzip)
        if self.config.bearer_token:
            headers["Authorization"] = f"Bearer {self.config.bearer_token}"
        request = urllib.request.Request(self.config.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
            response.read()  # urlopen raises HTTPError on 4xx/5xx, which the worker retries
