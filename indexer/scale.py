"""One cosine scale for every embedder.

The fusion weights, the learned ranker's temperature and the confidence thresholds were
measured with the default model, multilingual-e5-small, whose cosines crowd together: two
unrelated questions of one knowledge base score 0.857 on average, spread 0.024 (random pairs of
questions in content/, unionpay-dev and jiningbank: means 0.850-0.865, spreads 0.021-0.030).
Other models spread theirs two to six times wider (m3e-small 0.70-0.72 spread 0.055-0.059,
all-MiniLM-L6-v2 0.42-0.59 spread 0.12-0.16), so with the same settings their cosine
differences outweigh the lexical signals, the ranker grows sure of itself and "confident" stops
meaning 90 % right (m3e-small on unionpay-dev: 0.79 precision at 42 % of queries).

An index built with any other model (a sentence-transformers one, or a tuned copy of e5, whose
cosines spread twice as wide: bench/finetune.py) therefore measures where its cosines sit on
the knowledge base's own questions and maps them onto the default's:
c -> DEFAULT_MEAN + (c - mean) * DEFAULT_SPREAD / spread. The map is monotone, so it changes no
order within the dense signal, only how much that signal weighs and what a threshold means."""

import numpy as np

from indexer.embedders import E5Embedder

DEFAULT_MEAN = 0.857
DEFAULT_SPREAD = 0.024
PAIRS = 20_000
MIN_QUESTIONS = 8  # fewer give too few pairs for a spread worth trusting
IDENTITY = (1.0, 0.0)
KEEP = {E5Embedder.model_id}  # the model the scale was measured with


def measure(vectors: np.ndarray, pairs: int = PAIRS, seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of the cosines of random pairs of these unit vectors
    (seeded: the same knowledge base gets the same map on every build)."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(vectors), pairs)
    j = rng.integers(0, len(vectors), pairs)
    keep = i != j
    cos = np.einsum("ij,ij->i", vectors[i[keep]], vectors[j[keep]], dtype=np.float64)
    return float(cos.mean()), float(cos.std())


def cosine_map(embedder_id: str, questions: np.ndarray) -> tuple[float, float]:
    """(a, b) such that a * cosine + b is on the default model's scale. The default model and
    the tests' hashed stand-in keep their own cosines."""
    if embedder_id in KEEP or embedder_id.startswith("hash:") or len(questions) < MIN_QUESTIONS:
        return IDENTITY
    mean, spread = measure(questions)
    if spread < 1e-6:
        return IDENTITY
    a = DEFAULT_SPREAD / spread
    return round(a, 6), round(DEFAULT_MEAN - a * mean, 6)
