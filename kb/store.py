"""SQLite store (through sqlite-utils): what was indexed, and the embedding cache.

The cache is keyed by (embedder id, kind, text hash), so text that did not change is never
embedded twice, whichever article it moves to."""

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import sqlite_utils

from kb.article import Article


def text_key(kind: str, text: str) -> str:
    return hashlib.sha256(f"{kind}\x00{text}".encode()).hexdigest()[:24]


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")
        self.db = sqlite_utils.Database(conn)
        self._create()

    def _create(self) -> None:
        if "articles" not in self.db.table_names():
            self.db["articles"].create(
                {"id": str, "path": str, "content_hash": str, "title": str, "category": str,
                 "data": str},
                pk="id",
            )
        if "passages" not in self.db.table_names():
            self.db["passages"].create(
                {"article_id": str, "seq": int, "kind": str, "text": str}, pk=("article_id", "seq")
            )
        if "embeddings" not in self.db.table_names():
            self.db["embeddings"].create(
                {"embedder": str, "key": str, "dim": int, "vector": bytes}, pk=("embedder", "key")
            )

    # Articles and passages: a record of what the last build indexed.
    def indexed_hashes(self) -> dict[str, str]:
        return {r["id"]: r["content_hash"] for r in self.db["articles"].rows}

    def record_articles(self, articles: list[Article], passages: dict[str, list[tuple]]) -> None:
        with self.db.conn:
            self.db.execute("DELETE FROM articles")
            self.db.execute("DELETE FROM passages")
            self.db["articles"].insert_all(
                {"id": a.id, "path": a.path, "content_hash": a.content_hash, "title": a.title,
                 "category": a.category, "data": json.dumps(a.questions, ensure_ascii=False)}
                for a in articles
            )
            self.db["passages"].insert_all(
                {"article_id": aid, "seq": i, "kind": kind, "text": text}
                for aid, rows in passages.items()
                for i, (kind, text) in enumerate(rows)
            )

    # Embedding cache.
    def cached_vectors(self, embedder: str, keys: list[str]) -> dict[str, np.ndarray]:
        found = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT key, dim, vector FROM embeddings WHERE embedder = ? AND key IN ({marks})",
                [embedder, *chunk],
            )
            for key, dim, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return found

    def cache_vectors(self, embedder: str, vectors: dict[str, np.ndarray]) -> None:
        with self.db.conn:
            self.db["embeddings"].insert_all(
                ({"embedder": embedder, "key": k, "dim": len(v),
                  "vector": np.asarray(v, dtype=np.float32).tobytes()} for k, v in vectors.items()),
                replace=True,
            )

    def close(self) -> None:
        self.db.conn.close()
