"""Query embeddings of concurrent searches, computed together.

Every search embeds its query alone. One at a time that is as fast as it gets, but sixteen
searches at once would start sixteen model calls, each wanting every core. Here the first caller
runs the model at once; callers that arrive while it runs wait, and the next of them to wake
runs one call for all of them. A batch of sixteen short queries costs about as much as a few
single ones (the model streams its weights once per call), so under load throughput rises and
a lone agent waits no longer than before."""

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


class BatchingEmbedder:
    """An Embedder whose concurrent encode() calls share model calls."""

    def __init__(self, inner: Embedder, max_batch: int = MAX_BATCH):
        self.inner = inner
        self.model_id, self.dim = inner.model_id, inner.dim
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._running = False
        self.calls = 0  # model calls made, for tests and the benchmark

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        if len(texts) != 1:
            return self.inner.encode(texts, kind)
        request = _Request(texts[0], kind)
        with self._cond:
            self._queue.append(request)
        while True:
            with self._cond:
                while request.vector is None and request.error is None and self._running:
                    self._cond.wait()
                if request.error is not None:
                    raise request.error
                if request.vector is not None:
                    return request.vector[None, :]
                self._running = True
                batch = self._take()
            self._run(batch)

    def _take(self) -> list[_Request]:
        """Up to max_batch queued requests of the kind of the oldest one (lock held)."""
        kind = self._queue[0].kind
        batch = [r for r in self._queue if r.kind == kind][: self.max_batch]
        taken = set(map(id, batch))
        self._queue = [r for r in self._queue if id(r) not in taken]
        return batch

    def _run(self, batch: list[_Request]) -> None:
        try:
            vectors = self.inner.encode([r.text for r in batch], batch[0].kind)
            error = None
        except BaseException as exc:  # handed to every waiting caller, then raised
            vectors, error = None, exc
        with self._cond:
            for n, r in enumerate(batch):
                if error is None:
                    r.vector = vectors[n]
                else:
                    r.error = error
            self.calls += 1
            self._running = False
            self._cond.notify_all()
