"""Dense index over passage vectors (inner product of unit vectors = cosine).

Exact (flat) below HNSW_FROM passages, where a scan of every vector is cheap; HNSW above, where
the scan would dominate a query (docs/performance.md has the measurements). HNSW keeps each
vector as 8-bit codes (one byte per dimension, scaled per dimension over the index): a quarter
of the memory, which is what lets 50,000 articles serve in 1 GiB, for cosines off by a few
1e-4 (bench/speed.py reports it), well below what separates two articles. Candidates are
re-scored from the stored codes (VectorIndex.dots).

faiss runs OpenMP threads of its own, apart from the embedding model's. A single query gains
nothing from them, and their spinning after each search steals the cores the model needs next:
the query embedding took 11 ms instead of 6. So searches run on one thread and builds on all;
OpenMP keeps that number per calling thread, so neither setting leaks into the other."""

import os

import faiss
import numpy as np

from kb.allocator import huge_pages

HNSW_FROM = 20_000
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 80
# The beam is never narrower than the passages asked for (100 per search): at 50,000 articles
# 128 against 100 changed no first answer in 800 queries (top-10 overlap 0.997) for 0.15 ms more.
HNSW_EF_SEARCH = 100


class VectorIndex:
    def __init__(self, index: faiss.Index):
        self.index = index
        # Views of the index's memory, made on first use; only build() adds vectors, before
        # any use. Anything that adds later must reset this.
        self._codes = None

    @classmethod
    def build(cls, vectors: np.ndarray, dim: int, hnsw_from: int = HNSW_FROM) -> "VectorIndex":
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
        if len(vectors) >= hnsw_from:
            index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M,
                                      faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.train(vectors)  # each dimension's range, for its 8-bit codes
        else:
            index = faiss.IndexFlatIP(dim)
        if len(vectors):
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            index.add(vectors)
        return cls(index)

    @property
    def size(self) -> int:
        return self.index.ntotal

    @property
    def kind(self) -> str:
        return "hnsw" if isinstance(self.index, faiss.IndexHNSW) else "flat"

    def search(self, query: np.ndarray, k: int,
               skip: faiss.IDSelector | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(passage ids, cosine scores) of the k nearest passages, none of those `skip`
        selects (see `skipping`)."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        faiss.omp_set_num_threads(1)
        if isinstance(self.index, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(HNSW_EF_SEARCH, k)
        else:
            params = faiss.SearchParameters()
        if skip is not None:
            params.sel = skip
        scores, ids = self.index.search(query.reshape(1, -1).astype(np.float32), k,
                                        params=params)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def dots(self, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Inner products of these passages with the query, read straight from the stored
        codes: for 8-bit codes x = vmin + (code + 0.5) / 255 * vdiff per dimension, so
        q.x = code . (q * vdiff / 255) + a constant. Less than half the time of
        reconstructing the vectors first (0.14 vs 0.35 ms for 1,100 passages at 50,000 articles)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._codes is None:
            self._codes = _stored(self.index)
        codes, vmin, vdiff = self._codes
        if codes is None:
            return self.vectors(ids) @ query
        if vmin is None:
            return codes[ids] @ query
        scale = (query * vdiff / np.float32(255)).astype(np.float32)
        return codes[ids] @ scale + np.float32(query @ vmin + 0.5 * scale.sum())

    def save(self, path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path) -> "VectorIndex":
        index = faiss.read_index(str(path))
        _on_huge_pages(index)
        return cls(index)


def _on_huge_pages(index: faiss.Index) -> int:
    """Put the vectors and the graph on 2 MiB pages; returns the bytes moved. An HNSW search
    reads a few thousand codes and neighbour lists scattered over hundreds of MB, right after
    the model has flushed the caches: at 50,000 articles each read also missed the TLB, and
    huge pages took a search over the graph from 1.26 to 1.04 ms (numpy's own large arrays get
    them already). Collapsing 176 MB takes about 0.5 s, in the loader's thread that runs
    beside the JSON parsing (indexer/segments.py)."""
    moved = 0
    if isinstance(index, faiss.IndexHNSW):
        neighbors = index.hnsw.neighbors  # int32 ids
        moved += huge_pages(int(neighbors.data()), neighbors.size() * 4)
    codes, _, _ = _stored(index)
    if codes is not None:
        moved += huge_pages(codes.__array_interface__["data"][0], codes.nbytes)
    return moved


def _stored(index: faiss.Index):
    """(codes, vmin, vdiff) as numpy views of the index's own memory (no copy): float32 rows
    of a flat index (vmin None), or 8-bit codes of HNSW with their per-dimension range;
    (None, None, None) for any other kind, which is then reconstructed."""
    if isinstance(index, faiss.IndexFlat):
        return faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(
            index.ntotal, index.d), None, None
    if isinstance(index, faiss.IndexHNSW):
        storage = faiss.downcast_index(index.storage)
        if isinstance(storage, faiss.IndexScalarQuantizer) and \
                storage.sq.qtype == faiss.ScalarQuantizer.QT_8bit and index.ntotal:
            codes = faiss.rev_swig_ptr(storage.codes.data(), index.ntotal * index.d)
            trained = faiss.vector_to_array(storage.sq.trained)
            return codes.reshape(index.ntotal, index.d), trained[: index.d], trained[index.d :]
    return None, None, None


def skipping(ids: np.ndarray) -> faiss.IDSelector | None:
    """A selector that leaves these ids out of a search; None for none."""
    if not len(ids):
        return None
    batch = faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64))
    selector = faiss.IDSelectorNot(batch)
    selector.keep = batch  # IDSelectorNot holds a bare pointer: keep its target alive
    return selector


class SegmentedVectors:
    """Several vector segments searched as one, over their live passages only, which are
    numbered in segment order (the numbering SegmentedBM25 and the passage arrays use)."""

    def __init__(self, segments: list[VectorIndex], live: list[np.ndarray | None]):
        self.segments = segments
        self.global_of = []  # per segment: local passage id -> global live id, -1 if deleted
        owners, locals_, offset = [], [], 0
        for n, (seg, m) in enumerate(zip(segments, live)):
            local = np.arange(seg.size, dtype=np.int64) if m is None else np.asarray(m, np.int64)
            mapping = np.full(seg.size, -1, dtype=np.int64)
            mapping[local] = np.arange(offset, offset + len(local))
            self.global_of.append(mapping)
            owners.append(np.full(len(local), n, dtype=np.int16))
            locals_.append(local)
            offset += len(local)
        self.size = offset
        self.skip = [skipping(np.flatnonzero(mapping < 0)) for mapping in self.global_of]
        self._segment = np.concatenate(owners) if owners else np.zeros(0, np.int16)
        self._local = np.concatenate(locals_) if locals_ else np.zeros(0, np.int64)

    @property
    def kind(self) -> str:
        return self.segments[0].kind if self.segments else "flat"

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = [], []
        for seg, skip, mapping in zip(self.segments, self.skip, self.global_of):
            # Deleted passages are skipped inside the search, not over-fetched and dropped: asking
            # HNSW for k + deleted neighbours raised its beam with every edit (search 2.9 ms
            # -> 18 ms at 50,000 articles after 259 edited ones, found by bench/soak.py).
            local, score = seg.search(query, k, skip)
            found = mapping[local]
            ids.append(found[found >= 0])
            scores.append(score[found >= 0])
        ids, scores = np.concatenate(ids), np.concatenate(scores)
        best = np.argsort(-scores, kind="stable")[:k]
        return ids[best], scores[best]

    def dots(self, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        segment, local = self._segment[ids], self._local[ids]
        if len(self.segments) == 1:
            return self.segments[0].dots(local, query)
        out = np.empty(len(ids), dtype=np.float32)
        for n, seg in enumerate(self.segments):
            rows = np.flatnonzero(segment == n)
            if len(rows):
                out[rows] = seg.dots(local[rows], query)
        return out

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        segment, local = self._segment[ids], self._local[ids]
        if len(self.segments) == 1:
            return self.segments[0].vectors(local)
        out = np.empty((len(ids), self.segments[0].index.d), dtype=np.float32)
        for n, seg in enumerate(self.segments):
            rows = np.flatnonzero(segment == n)
            if len(rows):
                out[rows] = seg.vectors(local[rows])
        return out
