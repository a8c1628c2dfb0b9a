"""Per-article maxima of per-passage scores, where each article owns a run of passages.

np.maximum.reduceat does this in one call but pays a fixed cost per run: at 50,000 articles
(366,000 passages) it took 2.0 ms per field, a fifth of a search. Here the articles are sorted by
passage count once, at load, and the scores are laid out slot by slot: every article's first
passage, then the second passage of those that have one, and so on, each slot in that article
order. The maxima are then one vectorised maximum per slot over contiguous slices: 0.15 ms for
the same field, against 0.6-1.0 ms when each slot was gathered from passage order (measured in
one process on bench/speed.py's 50,000-article set; docs/performance.md). The lexical index
writes its scores straight into this layout (SegmentedBM25.laid_out), so nothing is moved."""

import numpy as np


class ArticleMax:
    def __init__(self, starts: np.ndarray):
        """`starts`: article i owns passages starts[i]:starts[i + 1]; every article has one."""
        starts = np.asarray(starts, dtype=np.int64)
        counts = np.diff(starts)
        if len(counts) and counts.min() < 1:
            raise ValueError("every article needs at least one passage")
        # Longest first, so the articles that have slot j are a prefix of this order.
        self.order = np.argsort(-counts, kind="stable")
        sorted_counts = counts[self.order]
        slots = int(sorted_counts[0]) if len(counts) else 0
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

    def of(self, laid_out: np.ndarray) -> np.ndarray:
        """Each article's largest value, in article order, from values in the layout (anything
        after the last passage is ignored)."""
        if not self.have:
            return laid_out[:0].copy()
        best = laid_out[: self.have[0]].copy()
        for have, at in zip(self.have[1:], self.offsets[1:].tolist()):
            np.maximum(best[:have], laid_out[at : at + have], out=best[:have])
        out = np.empty_like(best)
        out[self.order] = best
        return out
