"""The common approaches the hybrid is compared with, each indexing the same article questions
(title + similar questions) and ranking articles by their best question."""

import re
import sqlite3

import bm25s
import numpy as np

from indexer.normalize import normalize
from indexer.segment import Segmenter, char_grams


class _Bm25s:
    """bm25s over pre-tokenised questions; an article scores as its best question."""

    def __init__(self, articles, tokenize):
        self.tokenize = tokenize
        self.owner, docs = [], []
        for i, a in enumerate(articles):
            for q in a.questions:
                self.owner.append(i)
                docs.append(tokenize(normalize(q)) or ["_"])
        self.ids = [a.id for a in articles]
        self.vocab = {t: n for n, t in enumerate(sorted({t for d in docs for t in d}))}
        self.model = bm25s.BM25()
        self.model.index(bm25s.tokenization.Tokenized(
            ids=[[self.vocab[t] for t in d] for d in docs], vocab=self.vocab), show_progress=False)
        self.owner = np.asarray(self.owner)

    def search(self, query: str, k: int = 10) -> list[str]:
        tokens = [t for t in self.tokenize(normalize(query)) if t in self.vocab]
        if not tokens:
            return []
        scores = self.model.get_scores(tokens)
        best = np.full(len(self.ids), -1.0)
        np.maximum.at(best, self.owner, scores)
        order = np.argsort(-best)[:k]
        return [self.ids[i] for i in order if best[i] > 0]


def bm25_words(articles):
    seg = Segmenter()
    return _Bm25s(articles, seg.words)


def bm25_chars(articles):
    return _Bm25s(articles, char_grams)


class Fts5Trigram:
    """SQLite FTS5 with the trigram tokenizer: the query's trigrams OR-ed, ranked by bm25()."""

    def __init__(self, articles):
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE q USING fts5(article, text, tokenize='trigram')")
        self.db.executemany("INSERT INTO q VALUES (?, ?)",
                            [(a.id, normalize(t)) for a in articles for t in a.questions])

    def search(self, query: str, k: int = 10) -> list[str]:
        text = re.sub(r"\s+", "", normalize(query))
        grams = {text[i : i + 3] for i in range(len(text) - 2)}
        grams = ['"' + g.replace('"', '""') + '"' for g in grams]
        if not grams:
            return []
        rows = self.db.execute(
            "SELECT article, min(s) AS best FROM (SELECT article, bm25(q) AS s FROM q "
            "WHERE q MATCH ? ORDER BY s LIMIT 500) GROUP BY article ORDER BY best LIMIT ?",
            (" OR ".join(grams), k))
        return [r[0] for r in rows]
