"""Per-article maxima (indexer/groups.py) against numpy's reduceat on the same runs."""

import numpy as np
import pytest

from indexer.groups import ArticleMax


def runs(counts):
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


@pytest.mark.parametrize("counts", [
    [1],
    [1, 1, 1],
    [7, 8, 7, 9, 1],
    [1, 40, 2, 3, 40, 1],  # one long answer split into many passages
])
def test_maxima_match_reduceat(counts):
    rng = np.random.default_rng(len(counts))
    starts = runs(counts)
    for _ in range(5):
        values = rng.random(starts[-1]).astype(np.float32)
        values[rng.random(len(values)) < 0.5] = 0.0  # most passages miss most queries
        got = ArticleMax(starts).of(values)
        assert got.dtype == values.dtype
        assert np.array_equal(got, np.maximum.reduceat(values, starts[:-1]))


def test_many_articles_of_mixed_length():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 12, size=5000)
    starts = runs(counts)
    values = rng.normal(size=starts[-1]).astype(np.float32)  # negative values too
    assert np.array_equal(ArticleMax(starts).of(values), np.maximum.reduceat(values, starts[:-1]))


def test_no_articles():
    assert ArticleMax(runs([])).of(np.zeros(0, np.float32)).shape == (0,)


def test_an_article_without_passages_is_refused():
    with pytest.raises(ValueError, match="at least one passage"):
        ArticleMax(runs([2, 0, 3]))
