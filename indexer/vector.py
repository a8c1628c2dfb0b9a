"""Dense index over passage vectors (inner product of unit vectors = cosine).

Exact (flat) below HNSW_FROM passages, where a scan of every vector is cheap; HNSW above, where
the scan would dominate a query. Candidates are re-scored exactly with reconstructed vectors."""

import faiss
import numpy as np

HNSW_FROM = 200_000
HNSW_M = 32


class VectorIndex:
    def __init__(self, index: faiss.Index):
        self.index = index

    @classmethod
    def build(cls, vectors: np.ndarray, dim: int) -> "VectorIndex":
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
        if len(vectors) >= HNSW_FROM:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 128
        else:
            index = faiss.IndexFlatIP(dim)
        if len(vectors):
            index.add(vectors)
        return cls(index)

    @property
    def size(self) -> int:
        return self.index.ntotal

    @property
    def kind(self) -> str:
        return "hnsw" if isinstance(self.index, faiss.IndexHNSW) else "flat"

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(passage ids, cosine scores) of the k nearest passages."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores, ids = self.index.search(query.reshape(1, -1).astype(np.float32), k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def save(self, path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path) -> "VectorIndex":
        return cls(faiss.read_index(str(path)))
