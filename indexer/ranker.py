"""A small ranker learned from the knowledge base's own questions at `kb index`.

A softmax classifier over articles on the query-side embeddings of every title and similar
question: it learns which directions separate near-duplicate articles and how much support an
article has (an article with many phrasings gets a stronger pull). Its probability is one more
signal for fusion.

A softmax over articles alone always crowns someone, even for a question the knowledge base
cannot answer. So the classifier has one extra "none of these" outcome with a fixed logit at the
similarity a question typically has to its nearest question of another article: a query has to
look more like an article than that to earn probability.

A rebuild after an edit starts from the live ranker (its columns, by article id) and needs only
WARM_EPOCHS: measured on content/, training past 100 epochs changes no ranking, so a warm start
from a converged ranker lands where a cold one would, in a tenth of the time. That keeps an
editor's save searchable in about a second.

Trained in seconds; skipped above MAX_WORK, where the exact softmax over every article would
take too long at index time and the plain signals rank on their own."""

import numpy as np

TEMPERATURE = 30.0
EPOCHS = 300
WARM_EPOCHS = 30
LEARNING_RATE = 0.1  # 0.5 diverged (training accuracy 0.73 on a 6-article KB)
L2 = 1e-4
MAX_WORK = 6_000_000  # training questions x articles


def train(vectors: np.ndarray, owner: np.ndarray, n_articles: int,
          start: np.ndarray | None = None, scale: float = 1.0):
    """(weights dim x n, bias n, none-of-these logit) or None when too small or too large.
    `start` (dim x n) holds a previous ranker's columns; an all-zero column (a new article)
    starts, as every column of a cold start does, from the article's mean question.
    `scale` maps this model's cosine differences onto the default model's (indexer/scale.py):
    the softmax is as sharp as it is with the default model, and the returned weights and
    logit carry the factor, so that `probabilities` needs nothing more."""
    if n_articles < 2 or len(vectors) * n_articles > MAX_WORK:
        return None
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    none_logit = _typical_confusion(x, owner)
    weights = np.zeros((x.shape[1], n_articles), dtype=np.float32)
    np.add.at(weights.T, owner, x)
    weights /= np.maximum(np.linalg.norm(weights, axis=0, keepdims=True), 1e-9)  # mean question
    epochs = EPOCHS
    if start is not None:
        norms = np.linalg.norm(start, axis=0)
        known = norms > 0
        weights[:, known] = start[:, known] / norms[known]  # saved columns carry the scale
        epochs = WARM_EPOCHS
    # No learned bias: it would lift an article for every query, related or not.
    bias = np.zeros(n_articles, dtype=np.float32)
    rows = np.arange(len(owner))
    for _ in range(epochs):
        # The step keeps the default's size: scaled with the softmax, it left a wide model's
        # ranker short of converged in EPOCHS (m3e-small: curated unionpay-dev R@1 0.530
        # against 0.539).
        grad = _softmax_with_none(scale * (x @ weights + bias), scale * none_logit)[:, :-1]
        grad[rows, owner] -= 1.0
        weights -= LEARNING_RATE * (TEMPERATURE * (x.T @ grad) / len(owner) + L2 * weights)
        # Unit columns: a logit stays a cosine to a learned prototype, comparable to none_logit.
        weights /= np.maximum(np.linalg.norm(weights, axis=0, keepdims=True), 1e-9)
    return weights * np.float32(scale), bias, np.float32(none_logit * scale)


def probabilities(query: np.ndarray, weights, bias, none_logit) -> np.ndarray:
    """P(article | query) for every article; what is left over is 'none of these'."""
    return _softmax_with_none((query @ weights + bias)[None, :], float(none_logit))[0, :-1]


def _typical_confusion(x: np.ndarray, owner: np.ndarray) -> float:
    """Mean similarity of each question to its nearest question of another article."""
    best = np.full(len(x), -1.0, dtype=np.float32)
    for start in range(0, len(x), 2048):
        sims = x[start : start + 2048] @ x.T
        same = owner[start : start + 2048, None] == owner[None, :]
        sims[same] = -1.0
        best[start : start + 2048] = sims.max(axis=1)
    return float(best.mean())


def _softmax_with_none(logits: np.ndarray, none_logit: float) -> np.ndarray:
    z = TEMPERATURE * np.concatenate(
        [logits, np.full((len(logits), 1), none_logit, dtype=np.float32)], axis=1)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z
