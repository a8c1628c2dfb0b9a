"""Grouping logged questions: near-identical phrasings into one question, and questions without
a confident answer into themes (the report's content gaps).

Both work on the normalised text (indexer/normalize.py, fillers and punctuation dropped), so
"请问家里停电了？" and "家里停电了" count as one question. Near-identical means a character-bigram
Jaccard similarity of at least NEAR. Themes are average-linkage clusters, over the embedder's
cosine when one is given and over bigram Jaccard otherwise."""

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.normalize import normalize, strip_fillers

NEAR = 0.7  # bigram Jaccard from which two phrasings are the same question
# Average-linkage cut for themes. Sentence vectors share a large common direction (e5 cosines of
# unrelated questions are ~0.8), so the vectors are centred on their mean first; on the month
# logs of tests/logsim.py 0.25 keeps "需求响应" and "燃气" questions in themes of their own.
THEME_COSINE = 0.25  # centred cosine
FEW_COSINE = 0.9  # plain cosine, below MIN_CENTRED texts, where the mean is not a fair centre
MIN_CENTRED = 20
THEME_JACCARD = 0.3  # bigram Jaccard, without a model
MAX_CLUSTERED = 2000  # the most frequent texts are clustered; the long tail is left out
_NOISE = re.compile(r"[\s\W_]+")
_MASKED = re.compile(r"\[[^\[\]]{1,6}\]")  # the labels of kb/masking.py
_PARTICLES = re.compile(r"[啊呢吧呀嘛哈哦]+$")


@functools.lru_cache(maxsize=65_536)  # a month repeats its questions thousands of times
def question_key(query: str) -> str:
    """The text two phrasings of one question share: normalised, no fillers, no punctuation,
    no masked numbers, no trailing particles (啊, 呢, 吧...)."""
    text = _NOISE.sub("", strip_fillers(normalize(_MASKED.sub(" ", query))))
    return _PARTICLES.sub("", text) or text or query.strip()


# A mask, or a run of latin letters and digits (a number or an address, half typed).
_NUMBER = r"(?:\[[^\[\]]{1,6}\]|[0-9a-z@._%+\-]*[0-9a-z][0-9a-z@._%+\-]*)"
_NUMBERS = re.compile(_NUMBER + r"(?:[ \-]*" + _NUMBER + ")*")


@functools.lru_cache(maxsize=65_536)
def typing_key(query: str) -> str:
    """The query as typed so far, for telling whether one search continues another. A number
    being typed is masked only once it is long enough, so each number, mask or latin word is
    one '〇'."""
    return _NOISE.sub("", _NUMBERS.sub("〇", normalize(query)))


def bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)} or {text}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


@dataclass
class Group:
    """One question or theme: its members as (key, count), most frequent first."""

    members: list[tuple[str, int]]

    @property
    def count(self) -> int:
        return sum(c for _, c in self.members)

    @property
    def label(self) -> str:
        return self.members[0][0]


def merge_near(counts: dict[str, int], near: float = NEAR) -> list[Group]:
    """Group keys whose bigrams overlap by `near` or more with a more frequent key's group."""
    groups: list[Group] = []
    grams: list[set[str]] = []
    for key, count in sorted(counts.items(), key=lambda kc: (-kc[1], kc[0])):
        g = bigrams(key)
        best = max(range(len(groups)), key=lambda i: jaccard(g, grams[i]), default=None)
        if best is not None and jaccard(g, grams[best]) >= near:
            groups[best].members.append((key, count))
        else:
            groups.append(Group([(key, count)]))
            grams.append(g)
    return sorted(groups, key=lambda grp: -grp.count)


def cluster(counts: dict[str, int],
            embed: Callable[[list[str]], np.ndarray] | None = None) -> list[Group]:
    """Themes of keys (key -> count) by average linkage; `embed` gives a vector per text."""
    from scipy.cluster.hierarchy import fcluster, linkage

    keys = sorted(counts, key=lambda k: (-counts[k], k))[:MAX_CLUSTERED]
    if len(keys) < 2:
        return [Group([(k, counts[k])]) for k in keys]
    if embed is not None:
        vectors = np.asarray(embed(keys), dtype=np.float64)
        cut = 1.0 - FEW_COSINE
        if len(keys) >= MIN_CENTRED:
            vectors = vectors - vectors.mean(axis=0)
            cut = 1.0 - THEME_COSINE
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        distances = _condensed(1.0 - np.clip(vectors @ vectors.T, -1.0, 1.0))
    else:
        grams = [bigrams(k) for k in keys]
        full = np.array([[1.0 - jaccard(a, b) for b in grams] for a in grams])
        distances = _condensed(full)
        cut = 1.0 - THEME_JACCARD
    labels = fcluster(linkage(distances, method="average"), t=cut, criterion="distance")
    themes: dict[int, list[tuple[str, int]]] = {}
    for key, label in zip(keys, labels):
        themes.setdefault(int(label), []).append((key, counts[key]))
    return sorted((Group(m) for m in themes.values()), key=lambda g: (-g.count, g.label))


def _condensed(square: np.ndarray) -> np.ndarray:
    rows, cols = np.triu_indices(len(square), k=1)
    return np.maximum(square[rows, cols], 0.0)


def encoder(embedder) -> Callable[[Sequence[str]], np.ndarray]:
    """An `embed` for `cluster` from an indexer Embedder (query-side vectors)."""
    return lambda texts: embedder.encode(list(texts), "query")
