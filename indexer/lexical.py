"""BM25 over one token field, stored as a sparse term-by-passage weight matrix (one column per
passage, in the order the search reads them: indexer/groups.py PassageLayout).

Scores are divided by the query's own best possible score, so they lie in [0, 1] and mean the
same across queries: fusion can mix them with cosine similarities and a fixed threshold can say
when a match is confident.

An index can hold several segments (a large base and small updates, see indexer/segments.py).
Each segment stores its weights with its own idf; SegmentedBM25 rescales each query term to the
idf of all segments together, so a term means as much in a small update as in the base."""

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

K1 = 1.2
B = 0.75
# A row that at least 1/BITMAP_SHARE of the passages hold is looked up in a bitmap of its
# passages (BM25.find), no larger than the row itself: a binary search per candidate passage
# took 55 us per row against 11 us, for the common terms of every search at 50,000 articles.
BITMAP_SHARE = 32


def idf(n_docs, df):
    return np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


@dataclass
class BM25:
    vocab: dict[str, int]
    idf: np.ndarray  # per term
    weights: sparse.csr_matrix  # terms x columns (passages, in the order built), BM25 weights
    avgdl: float = 1.0  # the passage length the weights were normalised by (kept in the manifest)
    # row -> (bits, set bits before each 64-bit word), made on first use by find().
    _bitmaps: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, docs: list[list[str]], avgdl: float | None = None) -> "BM25":
        """`avgdl` fixes the length normalisation (an update segment takes its base's)."""
        vocab: dict[str, int] = {}
        rows, cols = [], []
        for col, tokens in enumerate(docs):
            for token in tokens:
                rows.append(vocab.setdefault(token, len(vocab)))
                cols.append(col)
        n_docs = len(docs)
        tf = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(vocab), n_docs)
        )
        tf.sum_duplicates()
        lengths = np.array([len(d) for d in docs], dtype=np.float32)
        if avgdl is None:
            avgdl = float(lengths.mean()) if n_docs and lengths.mean() > 0 else 1.0
        df = np.diff(tf.indptr).astype(np.float32)
        term_idf = idf(n_docs, df).astype(np.float32)
        # BM25 term weight per (term, passage), computed once at build time.
        norm = K1 * (1 - B + B * lengths / avgdl)
        tf.data = tf.data * (K1 + 1) / (tf.data + norm[tf.indices])
        tf.data *= np.repeat(term_idf, np.diff(tf.indptr))
        return cls(vocab=vocab, idf=term_idf, weights=tf.tocsr(), avgdl=avgdl)

    @property
    def n_docs(self) -> int:
        return self.weights.shape[1]

    def df(self, term_id: int) -> int:
        return int(self.weights.indptr[term_id + 1] - self.weights.indptr[term_id])

    def find(self, row: int, passages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of these columns hold term `row` (a mask), and for those that do, where
        their weight is in weights.data."""
        start, end = int(self.weights.indptr[row]), int(self.weights.indptr[row + 1])
        if (end - start) * BITMAP_SHARE < self.n_docs:
            cols = self.weights.indices[start:end]  # sorted: see load
            if not len(cols):
                return np.zeros(len(passages), dtype=bool), np.zeros(0, dtype=np.int64)
            # Needles of the row's own type: mixed types copy the whole row first.
            at = np.minimum(np.searchsorted(cols, passages.astype(cols.dtype)), len(cols) - 1)
            held = cols[at] == passages
            return held, start + at[held]
        bits, before = self._bitmap(row, start, end)
        word = passages >> 6
        bit = (passages & 63).astype(np.uint64)
        words = bits[word]
        held = ((words >> bit) & np.uint64(1)).astype(bool)
        # A passage's place in the row: the row's passages before its word, then in its word.
        below = np.bitwise_count(words & ((np.uint64(1) << bit) - np.uint64(1)))
        return held, start + (before[word] + below)[held]

    def _bitmap(self, row: int, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        found = self._bitmaps.get(row)
        if found is None:  # two threads may both make it: the same result, one is kept
            mask = np.zeros(-(-self.n_docs // 64) * 64, dtype=bool)
            mask[self.weights.indices[start:end]] = True
            bits = np.packbits(mask, bitorder="little").view("<u8")
            before = np.zeros(len(bits), dtype=np.int32)
            np.cumsum(np.bitwise_count(bits)[:-1], dtype=np.int32, out=before[1:])
            found = self._bitmaps[row] = (bits, before)
        return found

    def score(self, tokens: dict[str, float]) -> np.ndarray:
        """Normalised BM25 of every passage for weighted query tokens (token -> weight)."""
        ids, qweights = [], []
        for token, weight in tokens.items():
            idx = self.vocab.get(token)
            if idx is not None:
                ids.append(idx)
                qweights.append(weight)
        if not ids:
            return np.zeros(self.n_docs, dtype=np.float32)
        qw = np.asarray(qweights, dtype=np.float32)
        scores = self.raw(ids, qw)
        # Best case for each query token: a short passage that holds it.
        ceiling = float((self.idf[ids] * (K1 + 1) * qw).sum())
        if ceiling > 0:
            scores /= np.float32(ceiling)
        return scores

    def raw(self, term_ids: list[int], qw: np.ndarray) -> np.ndarray:
        """Unnormalised scores of every passage for term ids with (idf-rescaled) weights."""
        if not term_ids:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self.weights[term_ids].T @ qw, dtype=np.float32)

    def with_columns(self, order: np.ndarray) -> "BM25":
        """The same index with column c holding what column order[c] held: a segment written
        before its columns were stored in their layout, put in it at load (about a second at
        50,000 articles)."""
        weights = self.weights.tocsc()[:, np.asarray(order)].tocsr()
        weights.sort_indices()
        return BM25(vocab=self.vocab, idf=self.idf, weights=weights, avgdl=self.avgdl)

    def save(self, prefix) -> None:
        sparse.save_npz(f"{prefix}.npz", self.weights, compressed=False)
        np.save(f"{prefix}.idf.npy", self.idf)
        terms = [""] * len(self.vocab)
        for term, idx in self.vocab.items():
            terms[idx] = term
        with open(f"{prefix}.vocab.txt", "w", encoding="utf-8") as fh:
            fh.write("\n".join(terms))

    @classmethod
    def load(cls, prefix) -> "BM25":
        with open(f"{prefix}.vocab.txt", encoding="utf-8") as fh:
            text = fh.read()
        terms = text.split("\n") if text else []
        idf, weights = np.load(f"{prefix}.idf.npy"), sparse.load_npz(f"{prefix}.npz").tocsr()
        weights.sort_indices()  # built sorted; SegmentedBM25.scores_at relies on it
        if not len(terms) == len(idf) == weights.shape[0]:  # a truncated file can still parse
            raise ValueError(f"{prefix}: {len(terms)} terms, {len(idf)} idf values and "
                             f"{weights.shape[0]} weight rows should be equal")
        return cls(vocab=dict(zip(terms, range(len(terms)))), idf=idf, weights=weights)


@dataclass(frozen=True)
class Term:
    """A query token as SegmentedBM25 scores it."""

    weight: float  # the query's weight for the token
    ids: list  # its row in each segment, None where a segment lacks it
    idf: float  # over every segment
    df: int  # passages holding it, over every segment


class SegmentedBM25:
    """Several BM25 segments scored as one: idf over all of them (deleted passages still count,
    as in Lucene, until the segments are merged), then only the live passages.

    Scores are added up in the segments' own column order, one segment after another (see
    `column`): a segment written by the indexer stores its columns in the layout the per-article
    maxima read (indexer/groups.py PassageLayout), so the postings go straight to their places.
    Deleted passages keep their columns and get scores nobody reads."""

    def __init__(self, segments: list[BM25], live: list[np.ndarray | None],
                 positions: list[np.ndarray | None] | None = None):
        """`positions[n]`: the column of each of segment n's passages (None: passage order)."""
        self.segments = segments
        self.live_masks = live
        self.total_docs = sum(s.n_docs for s in segments)
        self.live = [np.arange(s.n_docs) if m is None else np.asarray(m, np.int64)
                     for s, m in zip(segments, live)]
        self.n_docs = sum(len(m) for m in self.live)
        # Live passage -> its segment's start among live ids, for scoring a few passages.
        self.first_live = np.cumsum([0] + [len(m) for m in self.live])
        # Where each segment's columns start in the scores of add_scores.
        self.offsets = np.cumsum([0] + [s.n_docs for s in segments]).astype(np.int64)
        positions = positions or [None] * len(segments)
        # Live passage -> its column in those scores (int32: 1.5 MB at 50,000 articles, a field).
        self.column = np.concatenate(
            [self.offsets[n] + (ids if pos is None else pos[ids])
             for n, (ids, pos) in enumerate(zip(self.live, positions))]
        ).astype(np.int32) if segments else np.zeros(0, np.int32)

    def terms(self, tokens: dict[str, float]) -> list[Term]:
        found = []
        n = self.total_docs
        for token, weight in tokens.items():
            ids = [s.vocab.get(token) for s in self.segments]
            df = sum(s.df(i) for s, i in zip(self.segments, ids) if i is not None)
            if df:  # idf() in plain floats: numpy's scalar path costs ten times as much
                found.append(Term(weight, ids, math.log(1.0 + (n - df + 0.5) / (df + 0.5)), df))
        return found

    @staticmethod
    def ceiling(terms: list[Term]) -> float:
        """The best score the terms allow (a short passage that holds them all)."""
        return sum(t.weight * t.idf * (K1 + 1) for t in terms)

    def score(self, tokens: dict[str, float]) -> np.ndarray:
        """Normalised BM25 of every live passage for weighted query tokens."""
        terms = self.terms(tokens)
        return self.scores(terms, self.ceiling(terms))

    def scores(self, terms: list[Term], ceiling: float) -> np.ndarray:
        """Every live passage's BM25 for these terms, divided by `ceiling`, in passage order."""
        return self.add_scores(terms, ceiling, np.zeros(self.total_docs, np.float32))[self.column]

    def add_scores(self, terms: list[Term], ceiling: float, into: np.ndarray) -> np.ndarray:
        """scores() added to `into` (total_docs long, in column order) and returned.

        One scatter of the terms' postings, their weights scaled by the ceiling and each
        segment's idf rescaling. Adding into the caller's array lets two fields share one
        running total."""
        if not terms or ceiling <= 0:  # no term, or only terms of weight 0
            return into
        columns, weights = [], []
        for n, seg in enumerate(self.segments):
            w, starts = seg.weights, seg.weights.indptr
            rows = [(t.ids[n], t.weight * t.idf / float(seg.idf[t.ids[n]]) / ceiling)
                    for t in terms if t.ids[n] is not None]
            if not rows:
                continue
            ids = np.concatenate([w.indices[starts[i] : starts[i + 1]] for i, _ in rows])
            columns.append(ids + self.offsets[n] if n else ids)
            weights += [w.data[starts[i] : starts[i + 1]] * np.float32(s) for i, s in rows]
        if columns:
            np.add.at(into, np.concatenate(columns), np.concatenate(weights))
        return into

    def scores_at(self, terms: list[Term], passages: np.ndarray, ceiling: float) -> np.ndarray:
        """The same for a few live passages: each term's weight looked up in its row
        (BM25.find), so a term held by most passages costs nothing like a pass over them all."""
        out = np.zeros(len(passages), dtype=np.float32)
        if not terms or not len(passages) or ceiling <= 0:
            return out
        columns = self.column[np.asarray(passages, dtype=np.int64)]
        segment = np.searchsorted(self.offsets, columns, side="right") - 1
        for n, seg in enumerate(self.segments):
            rows = np.flatnonzero(segment == n)
            if not len(rows):
                continue
            local = columns[rows] - self.offsets[n]
            for t in terms:
                i = t.ids[n]
                if i is None:
                    continue
                held, where = seg.find(i, local)
                scale = np.float32(t.weight * t.idf / float(seg.idf[i]))
                out[rows[held]] += seg.weights.data[where] * scale
        out /= np.float32(ceiling)
        return out


def token_weights(tokens: list[str], extra: list[str] = (), extra_weight: float = 0.5):
    """Query tokens with their counts, plus expansion tokens at a lower weight."""
    weights: dict[str, float] = {}
    for t in tokens:
        weights[t] = weights.get(t, 0.0) + 1.0
    for t in extra:
        weights.setdefault(t, extra_weight)
    return weights
