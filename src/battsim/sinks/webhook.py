"""HTTP webhook: POST batches of readings as JSON (optionally gzip) with an optional bearer token.

Each POST is ``{"readings": [reading, ...]}`` of at most ``batch_rows`` readings, each with the WebSocket's
reading fields plus ``seq`` (the tick's) and ``sent_at`` (when this POST was first encoded). Events are not
sent: a webhook receiver is a telemetry ingest."""

from __future__ import annotations

import gzip
import urllib.request
from datetime import UTC, datetime

from battsim.engine.readings import ReadingBatch
from battsim.engine.world import Event
from battsim.sinks.config import WebhookConfig
from battsim.sinks.payload import JarIds, JsonRows
from battsim.sinks.worker import SinkWorker


def encode_rows(rows: list[str], compress: bool) -> tuple[bytes, dict[str, str]]:
    """The POST body of reading JSON objects, and its headers."""
    body = ('{"readings":[' + ",".join(rows) + "]}").encode()
    headers = {"Content-Type": "application/json"}
    if compress:
        body = gzip.compress(body, compresslevel=1)  # level 1: most of the saving for a fraction of the CPU
        headers["Content-Encoding"] = "gzip"
    return body, headers


class WebhookSink:
    """A Sink: the simulation's thread hands over slices of a batch; the worker encodes and POSTs each."""

    kind = "webhook"

    def __init__(self, config: WebhookConfig, ids: JarIds, wait: bool = False):
        self.config = config
        self.ids = ids
        self._rows = JsonRows(ids)
        self.worker = SinkWorker(config.name, self._post, lambda item: item[2] - item[1],
                                 capacity=config.queue_batches, max_retries=config.max_retries,
                                 backoff_s=config.backoff_s, wait=wait)

    def readings(self, batch: ReadingBatch) -> None:
        for start in range(0, batch.rows, self.config.batch_rows):
            self.worker.put((batch, start, min(start + self.config.batch_rows, batch.rows)))

    def event(self, event: Event) -> None:
        self.ids.learn(event)

    def status(self) -> dict:
        return {"kind": self.kind, **self.worker.status()}

    def close(self, timeout_s: float = 10.0) -> None:
        self.worker.close(timeout_s)

    def _post(self, item) -> None:
        batch, start, stop = item
        sent_at = datetime.now(UTC).isoformat()
        body, headers = encode_rows(self._rows.rows(batch, sent_at, start, stop).tolist(), self.config.gzip)
        if self.config.bearer_token:
            headers["Authorization"] = f"Bearer {self.config.bearer_token}"
        request = urllib.request.Request(self.config.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
            response.read()  # urlopen raises HTTPError on 4xx/5xx, which the worker retries
