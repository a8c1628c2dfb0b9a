"""Per-article maxima of per-passage scores, where each article owns a run of passages.

np.maximum.reduceat does this in one call but pays a fixed cost per run: at 50,000 articles
(366,000 passages) it took 2.0 ms per field, a fifth of a search. Here the articles are sorted by
passage count once, at load; the maxima are then taken slot by slot (every article's first
passage, then the second passage of those that have one, ...), each slot one gather and one
vectorised maximum over a contiguous slice: 0.6-1.0 ms for the same field (measured in one
process on bench/speed.py's 50,000-article set; docs/performance.md)."""

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
        firsts = starts[:-1][self.order]
        self.slots = []  # (how many articles have this slot, their passage in it)
        for j in range(1, int(sorted_counts[0]) if len(counts) else 0):
            have = int(np.searchsorted(-sorted_counts, -j, side="left"))
            self.slots.append((have, firsts[:have] + j))
        self.first = firsts

    def of(self, values: np.ndarray) -> np.ndarray:
        """Each article's largest value, in article order."""
        best = values[self.first]
        for have, passages in self.slots:
            np.maximum(best[:have], values[passages], out=best[:have])
        out = np.empty_like(best)
        out[self.order] = best
        return out
