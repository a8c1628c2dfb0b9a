"""Concurrent query embeddings share model calls. A stand-in embedder that can be held inside
its first call makes the queueing deterministic; the test is about the batching, not the model."""

import threading

import numpy as np
import pytest

from indexer.batching import BatchingEmbedder
from indexer.embedders import HashEmbedder


class HeldEmbedder(HashEmbedder):
    """Blocks inside its first call until released; records every call's texts and the
    threads it was asked to use (per calling thread, as OpenMP keeps them)."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.batches = []
        self.threads = []
        self._local = threading.local()

    def set_threads(self, n):
        self._local.n = n

    def encode(self, texts, kind):
        self.batches.append(list(texts))
        self.threads.append(getattr(self._local, "n", None))
        if len(self.batches) == 1:
            self.release.wait(10)
        if any(t == "boom" for t in texts):
            raise RuntimeError("model failed")
        return super().encode(texts, kind)


def run(batcher, texts):
    results, errors = {}, {}

    def ask(text):
        try:
            results[text] = batcher.encode([text], "query")
        except RuntimeError as exc:
            errors[text] = exc

    threads = [threading.Thread(target=ask, args=(t,)) for t in texts]
    threads[0].start()
    while not batcher.inner.batches:
        threading.Event().wait(0.001)
    for t in threads[1:]:
        t.start()
    while len(batcher._queue) < len(texts) - 1:
        threading.Event().wait(0.001)
    batcher.inner.release.set()
    for t in threads:
        t.join(10)
    return results, errors


def test_queries_waiting_for_the_model_share_one_call():
    batcher = BatchingEmbedder(HeldEmbedder(), lanes=1)
    texts = [f"第{i}个问题" for i in range(9)]
    results, _ = run(batcher, texts)
    assert batcher.inner.batches[0] == texts[:1]
    assert sorted(batcher.inner.batches[1]) == sorted(texts[1:])
    assert batcher.calls == 2
    alone = HashEmbedder()
    for text in texts:
        assert results[text].shape == (1, 64)
        assert np.allclose(results[text], alone.encode([text], "query"))


def test_batches_are_capped():
    batcher = BatchingEmbedder(HeldEmbedder(), max_batch=3, lanes=1)
    results, _ = run(batcher, [f"问题{i}" for i in range(8)])
    assert len(results) == 8
    assert [len(b) for b in batcher.inner.batches] == [1, 3, 3, 1]


def test_a_failed_call_fails_its_callers_only():
    batcher = BatchingEmbedder(HeldEmbedder(), lanes=1)
    results, errors = run(batcher, ["first", "boom", "other"])
    assert set(errors) == {"boom", "other"} and set(results) == {"first"}
    assert batcher.encode(["again"], "query").shape == (1, 64)  # the model is usable again


def test_a_lone_query_gets_every_core_and_concurrent_calls_one_each():
    inner = HeldEmbedder()
    batcher = BatchingEmbedder(inner, lanes=2)
    first = threading.Thread(target=batcher.encode, args=(["第一个"], "query"))
    first.start()
    while not inner.batches:
        threading.Event().wait(0.001)
    second = batcher.encode(["第二个"], "query")  # a second lane: no wait for the first
    assert second.shape == (1, 64) and inner.batches[1] == ["第二个"]
    inner.release.set()
    first.join(10)
    assert inner.threads == [2, 1]


def test_several_texts_go_straight_to_the_model():
    inner = HashEmbedder()
    batcher = BatchingEmbedder(inner)
    assert batcher.encode(["一", "二"], "passage").shape == (2, 64)
    assert inner.calls == 1 and batcher.calls == 0
    with pytest.raises(AttributeError):
        batcher.texts_encoded  # noqa: B018 - only model_id, dim and encode are passed on
