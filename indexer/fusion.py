"""Fusion: how the lexical and dense signals of each candidate become one score.

Each method takes the candidates' signals (arrays aligned by candidate) and weights, and returns
one score per candidate. Lexical signals are normalised BM25 in [0, 1]; dense is cosine."""

import numpy as np

Signals = dict[str, np.ndarray]  # "dense", "chars", "words"


def convex(s: Signals, w: dict[str, float]) -> np.ndarray:
    """Weighted sum of the raw signals: absolute, so a threshold means the same for every query."""
    return sum(w[name] * s[name] for name in w)


def minmax(s: Signals, w: dict[str, float]) -> np.ndarray:
    """Weighted sum after scaling each signal to [0, 1] over this query's candidates."""
    def scale(x):
        span = x.max() - x.min() if len(x) else 0
        return (x - x.min()) / span if span > 0 else np.zeros_like(x)
    return sum(w[name] * scale(s[name]) for name in w)


def rrf(s: Signals, w: dict[str, float], k: int = 60) -> np.ndarray:
    """Weighted reciprocal rank fusion: only the order within each signal counts."""
    total = np.zeros(len(next(iter(s.values()))), dtype=np.float64)
    for name in w:
        ranks = np.empty(len(s[name]), dtype=np.float64)
        ranks[np.argsort(-s[name], kind="stable")] = np.arange(1, len(s[name]) + 1)
        total += w[name] / (k + ranks)
    return total


METHODS = {"convex": convex, "minmax": minmax, "rrf": rrf}


def fuse(method: str, signals: Signals, weights: dict[str, float]) -> np.ndarray:
    try:
        fn = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown fusion '{method}': choose one of {', '.join(METHODS)}") from None
    return np.asarray(fn(signals, weights), dtype=np.float64)
