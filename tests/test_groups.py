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
        maxima = ArticleMax(starts)
        got = maxima.of(maxima.lay_out(values))
        assert got.dtype == values.dtype
        assert np.array_equal(got, np.maximum.reduceat(values, starts[:-1]))


def test_many_articles_of_mixed_length():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 12, size=5000)
    starts = runs(counts)
    values = rng.normal(size=starts[-1]).astype(np.float32)  # negative values too
    maxima = ArticleMax(starts)
    assert np.array_equal(maxima.of(maxima.lay_out(values)),
                          np.maximum.reduceat(values, starts[:-1]))


def test_the_layout_puts_each_slot_in_one_run():
    """Every passage gets its own place; slot j holds the j-th passage of every article that
    has one, longest articles first, so a maximum per slot reads one contiguous run."""
    counts = [2, 3, 1, 3]
    maxima = ArticleMax(runs(counts))
    assert sorted(maxima.position.tolist()) == list(range(sum(counts)))
    # Article order by length: 1, 3 (three passages), 0 (two), 2 (one).
    assert maxima.have == [4, 3, 2]
    # Passage 0 of article 1 (passage id 2) is first; passage 2 of article 3 (id 8) is last.
    assert maxima.position[2] == 0 and maxima.position[8] == 8
    # Anything after the passages (where SegmentedBM25 drops deleted passages) is ignored.
    values = np.arange(9, dtype=np.float32)
    padded = np.append(maxima.lay_out(values), np.float32(100))
    assert maxima.of(padded).tolist() == [1, 4, 5, 8]


def test_no_articles():
    maxima = ArticleMax(runs([]))
    assert maxima.of(maxima.lay_out(np.zeros(0, np.float32))).shape == (0,)


def test_an_article_without_passages_is_refused():
    with pytest.raises(ValueError, match="at least one passage"):
        ArticleMax(runs([2, 0, 3]))
