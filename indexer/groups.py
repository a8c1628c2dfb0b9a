"""Per-article maxima of per-passage scores, where each article owns a run of passages.

np.maximum.reduceat does this in one call but pays a fixed cost per run: at 50,000 articles
(366,000 passages) it took 2.0 ms per field, a fifth of a search. Here the articles are sorted by
passage count once, at load, and the scores are laid out slot by slot: every article's first
passage, then the second passage of those that have one, and so on, each slot in that article
order. The maxima are then one vectorised maximum per slot over contiguous slices: 0.15 ms for
the same field, against 0.6-1.0 ms when each slot was gathered from passage order (measured in
one process on bench/speed.py's 50,000-article set; docs/performance.md).

A segment stores its lexical columns in the layout of PassageLayout (questions, then answers,
each laid out as above), so a query's postings are scattered straight to their places: no
lookup of each posting's place and no weight per posting (answers count less, and the weight is
applied to their per-article maxima instead)."""

import numpy as np


class ArticleMax:
    def __init__(self, starts: np.ndarray):
        """`starts`: article i owns passages starts[i]:starts[i + 1] (none when equal)."""
        starts = np.asarray(starts, dtype=np.int64)
        counts = np.diff(starts)
        self.articles = len(counts)
        # Longest first, so the articles that have slot j are a prefix of this order.
        self.order = np.argsort(-counts, kind="stable")
        sorted_counts = counts[self.order]
        slots = int(sorted_counts[0]) if len(counts) else 0
        self.passages = int(starts[-1]) if len(starts) else 0
        # have[j]: how many articles have a passage in slot j; the slot starts at offsets[j].
        self.have = [int(np.searchsorted(-sorted_counts, -j, side="left")) for j in range(slots)]
        self.offsets = np.concatenate([[0], np.cumsum(self.have)[:-1]]).astype(np.int64)
        rank = np.empty(len(counts), dtype=np.int64)
        rank[self.order] = np.arange(len(counts))
        slot = np.arange(starts[-1]) - np.repeat(starts[:-1], counts)  # of each passage
        # Where passage p goes in the layout.
        self.position = (self.offsets[slot] + np.repeat(rank, counts)) if len(counts) \
            else np.zeros(0, dtype=np.int64)

    def lay_out(self, values: np.ndarray) -> np.ndarray:
        """Per-passage values, from passage order into the layout."""
        out = np.empty_like(values)
        out[self.position] = values
        return out

    def of(self, laid_out: np.ndarray, empty: float = 0.0) -> np.ndarray:
        """Each article's largest value, in article order, from values in the layout (anything
        after the last passage is ignored); `empty` for an article without passages."""
        if not self.have:
            return np.full(self.articles, empty, dtype=laid_out.dtype)
        best = laid_out[: self.have[0]].copy()
        for have, at in zip(self.have[1:], self.offsets[1:].tolist()):
            np.maximum(best[:have], laid_out[at : at + have], out=best[:have])
        if self.have[0] == self.articles:
            out = np.empty_like(best)
        else:  # the articles without passages come last in self.order
            out = np.full(self.articles, empty, dtype=best.dtype)
        out[self.order[: self.have[0]]] = best
        return out


class PassageLayout:
    """The order of a segment's lexical columns: every question passage (titles and similar
    questions) laid out by ArticleMax, then every answer passage laid out by another. An
    article's best lexical score is then the larger of its best question and its best answer
    times the answer weight: one multiplication per article instead of one per posting."""

    def __init__(self, owner: np.ndarray, answer: np.ndarray, articles: int):
        """`owner`: each passage's article (passages of one article contiguous, articles in
        order); `answer`: which passages are answer text."""
        owner = np.asarray(owner, dtype=np.int64)
        answer = np.asarray(answer, dtype=bool)
        parts = []
        for kind in (~answer, answer):
            counts = np.bincount(owner[kind], minlength=articles)
            parts.append(ArticleMax(np.concatenate([[0], np.cumsum(counts)])))
        self.questions, self.answers = parts
        self.split = self.questions.passages
        # Passage p's column: its place among the questions, or after them among the answers.
        self.position = np.empty(len(owner), dtype=np.int32)  # kept with the segment
        self.position[~answer] = self.questions.position
        self.position[answer] = self.split + self.answers.position

    @property
    def order(self) -> np.ndarray:
        """The passage in each column (the inverse of position)."""
        order = np.empty(len(self.position), dtype=np.int64)
        order[self.position] = np.arange(len(self.position))
        return order

    def of(self, laid_out: np.ndarray, answer_weight: float) -> np.ndarray:
        """Each article's best value, answers weighted, from values in this layout."""
        best = self.questions.of(laid_out[: self.split])
        answers = self.answers.of(laid_out[self.split : self.split + self.answers.passages])
        answers *= answers.dtype.type(answer_weight)
        return np.maximum(best, answers, out=best)
