"""BM25 over one token field, stored as a sparse term-by-passage weight matrix.

Scores are divided by the query's own best possible score, so they lie in [0, 1] and mean the
same across queries: fusion can mix them with cosine similarities and a fixed threshold can say
when a match is confident."""

from dataclasses import dataclass

import numpy as np
from scipy import sparse

K1 = 1.2
B = 0.75


@dataclass
class BM25:
    vocab: dict[str, int]
    idf: np.ndarray  # per term
    weights: sparse.csr_matrix  # terms x passages, precomputed BM25 term weights

    @classmethod
    def build(cls, docs: list[list[str]]) -> "BM25":
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
        avg = float(lengths.mean()) if n_docs and lengths.mean() > 0 else 1.0
        df = np.diff(tf.indptr).astype(np.float32)
        idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        # BM25 term weight per (term, passage), computed once at build time.
        norm = K1 * (1 - B + B * lengths / avg)
        tf.data = tf.data * (K1 + 1) / (tf.data + norm[tf.indices])
        tf.data *= np.repeat(idf, np.diff(tf.indptr))
        return cls(vocab=vocab, idf=idf, weights=tf.tocsr())

    @property
    def n_docs(self) -> int:
        return self.weights.shape[1]

    def score(self, tokens: dict[str, float]) -> np.ndarray:
        """Normalised BM25 of every passage for weighted query tokens (token -> weight)."""
        ids, qweights = [], []
        for token, weight in tokens.items():
            idx = self.vocab.get(token)
            if idx is not None:
                ids.append(idx)
                qweights.append(weight)
        scores = np.zeros(self.n_docs, dtype=np.float32)
        if not ids:
            return scores
        qw = np.asarray(qweights, dtype=np.float32)
        scores += self.weights[ids].T @ qw
        # Best case for each query token: a short passage that holds it.
        ceiling = float((self.idf[ids] * (K1 + 1) * qw).sum())
        return scores / ceiling if ceiling > 0 else scores

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
        return cls(
            vocab={t: i for i, t in enumerate(terms)},
            idf=np.load(f"{prefix}.idf.npy"),
            weights=sparse.load_npz(f"{prefix}.npz").tocsr(),
        )


def token_weights(tokens: list[str], extra: list[str] = (), extra_weight: float = 0.5):
    """Query tokens with their counts, plus expansion tokens at a lower weight."""
    weights: dict[str, float] = {}
    for t in tokens:
        weights[t] = weights.get(t, 0.0) + 1.0
    for t in extra:
        weights.setdefault(t, extra_weight)
    return weights
