"""Per-article maxima (indexer/groups.py) against numpy's reduceat on the same runs."""

import numpy as np
import pytest

from indexer.groups import ArticleMax, PassageLayout


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


def test_an_article_without_passages_gets_the_empty_value():
    """Answers are laid out apart from questions, and not every article has an answer."""
    counts = [2, 0, 3, 0]
    starts = runs(counts)
    maxima = ArticleMax(starts)
    values = np.array([0.5, 0.2, 0.1, 0.9, 0.3], dtype=np.float32)
    assert maxima.of(maxima.lay_out(values)).tolist() == pytest.approx([0.5, 0, 0.9, 0])
    assert maxima.of(maxima.lay_out(values), empty=-1).tolist() == pytest.approx(
        [0.5, -1, 0.9, -1])
    nothing = ArticleMax(runs([0, 0]))
    assert nothing.of(np.zeros(0, np.float32)).tolist() == [0, 0]


@pytest.mark.parametrize("seed", range(4))
def test_passage_layout_maxima_weight_the_answers(seed):
    """PassageLayout: questions then answers, each laid out by ArticleMax; an article's best is
    the larger of its best question and its best answer times the weight, which is the
    maximum of the weighted passages in passage order."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 9, size=300)
    owner = np.repeat(np.arange(len(counts)), counts)
    # Questions first in each article (a title, maybe similar questions), then its answers.
    slot = np.arange(len(owner)) - np.repeat(runs(counts)[:-1], counts)
    answer = slot >= rng.integers(1, 4, size=len(counts))[owner]
    layout = PassageLayout(owner, answer, len(counts))
    assert sorted(layout.position.tolist()) == list(range(len(owner)))
    assert np.array_equal(layout.order[layout.position], np.arange(len(owner)))
    assert layout.split == (~answer).sum()
    assert (layout.position[~answer] < layout.split).all()
    values = rng.random(len(owner)).astype(np.float32)
    values[rng.random(len(owner)) < 0.5] = 0.0
    laid = np.empty_like(values)
    laid[layout.position] = values
    weighted = values * np.where(answer, np.float32(0.85), np.float32(1.0))
    expected = np.maximum.reduceat(weighted, runs(counts)[:-1])
    assert np.allclose(layout.of(laid, 0.85), expected, rtol=1e-6, atol=0)
