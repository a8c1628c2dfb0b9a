"""A small ranker learned from the knowledge base's own questions at `kb index`.

A softmax classifier over articles on the query-side embeddings of every title and similar
question: it learns which directions separate near-duplicate articles and how much support an
article has (an article with many phrasings gets a stronger pull). Its probability is one more
signal for fusion.

The article's answer passages are examples too, each at ANSWER_WEIGHT: a knowledge base with
no similar questions has one title per article to learn from, and its answer says what the
title leaves out (unionpay-dev, no similar questions: R@1 0.506 -> 0.531; docs/benchmarks.md).

A softmax over articles alone always crowns someone, even for a question the knowledge base
cannot answer. So the classifier has one extra "none of these" outcome with a fixed logit at the
similarity a question typically has to its nearest question of another article: a query has to
look more like an article than that to earn probability.

A rebuild after an edit starts from the live ranker (the columns of the articles that did not
change: same id, same content hash) and needs only
WARM_EPOCHS: a warm start from a converged ranker lands where a cold one would, in a fifth of
the time. That keeps an editor's save searchable in about a second.

Trained in seconds; skipped above MAX_WORK, where the exact softmax over every article would
take too long at index time and the plain signals rank on their own."""

import numpy as np

# How sharply the softmax separates articles. 75 since the answers joined the examples: against
# 30, R@1 +0.7 / +3.6 / +0.7 / +4.2 points on unionpay-dev, its curated case, jiningbank and
# its curated case, -1.1 on content/ (docs/benchmarks.md); before they joined, content/ lost 2.8.
TEMPERATURE = 75.0
# Plain gradient steps were still gaining at 1,000 epochs (unionpay-dev R@1 0.531 at 1,000
# against 0.520 at 300); momentum gets there in 150.
EPOCHS = 150
WARM_EPOCHS = 30
LEARNING_RATE = 0.1  # 0.5 diverged (training accuracy 0.73 on a 6-article KB)
MOMENTUM = 0.9
# A column's gradient is about its article's share of the examples, 1/n: with few articles the
# same rate takes steps so long that training swings between answers (four articles, two with
# twin titles: a query about one's answer went to its twin at 150 epochs, back at 300). Below
# FULL_STEP_ARTICLES the step shrinks in proportion (content/, 168 articles, ranks the same at
# 0.84 of it); larger knowledge bases take the full step.
FULL_STEP_ARTICLES = 200
L2 = 1e-4
ANSWER_WEIGHT = 0.5  # per answer passage; 0.3 / 1.0 gave 0.516 / 0.517 on unionpay-dev
MAX_WORK = 6_000_000  # training examples x articles


def train(vectors: np.ndarray, owner: np.ndarray, n_articles: int,
          start: np.ndarray | None = None, scale: float = 1.0,
          answers: tuple[np.ndarray, np.ndarray] | None = None):
    """(weights dim x n, bias n, none-of-these logit) or None when too small or too large.
    `vectors` and `owner`: the questions (titles and similar questions) and their articles.
    `answers` (vectors, owner): answer passages, learned from at ANSWER_WEIGHT each, left out
    when they would take the work past MAX_WORK.
    `start` (dim x n) holds a previous ranker's columns; an all-zero column (a new or edited
    article) starts, as every column of a cold start does, from the article's mean question.
    `scale` maps this model's cosine differences onto the default model's (indexer/scale.py):
    the softmax is as sharp as it is with the default model, and the returned weights and
    logit carry the factor, so that `probabilities` needs nothing more."""
    if n_articles < 2 or len(vectors) * n_articles > MAX_WORK:
        return None
    questions = np.ascontiguousarray(vectors, dtype=np.float32)
    # The bar a query must clear is set by questions: an answer passage is no query.
    none_logit = _typical_confusion(questions, owner)
    weights = np.zeros((questions.shape[1], n_articles), dtype=np.float32)
    np.add.at(weights.T, owner, questions)
    weights /= np.maximum(np.linalg.norm(weights, axis=0, keepdims=True), 1e-9)  # mean question
    x, example_weight = questions, np.ones(len(owner), dtype=np.float32)
    if answers is not None and len(answers[0]) \
            and (len(owner) + len(answers[0])) * n_articles <= MAX_WORK:
        x = np.concatenate([questions, np.asarray(answers[0], dtype=np.float32)])
        owner = np.concatenate([owner, answers[1]])
        example_weight = np.concatenate(
            [example_weight, np.full(len(answers[1]), ANSWER_WEIGHT, dtype=np.float32)])
    epochs = EPOCHS
    if start is not None:
        norms = np.linalg.norm(start, axis=0)
        known = norms > 0
        weights[:, known] = start[:, known] / norms[known]  # saved columns carry the scale
        epochs = WARM_EPOCHS
    # No learned bias: it would lift an article for every query, related or not.
    bias = np.zeros(n_articles, dtype=np.float32)
    rows = np.arange(len(owner))
    total = float(example_weight.sum())
    velocity = np.zeros_like(weights)
    step = TEMPERATURE * min(1.0, n_articles / FULL_STEP_ARTICLES)
    for _ in range(epochs):
        # The step keeps the default's size: scaled with the softmax, it left a wide model's
        # ranker short of converged in EPOCHS (m3e-small: curated unionpay-dev R@1 0.530
        # against 0.539).
        grad = _softmax_with_none(scale * (x @ weights + bias), scale * none_logit)[:, :-1]
        grad[rows, owner] -= 1.0
        grad *= example_weight[:, None]
        velocity *= MOMENTUM
        velocity += step * (x.T @ grad) / total + L2 * weights
        weights -= LEARNING_RATE * velocity
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
