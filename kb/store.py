"""SQLite store (through sqlite-utils): the parsed content files, and the embedding cache.

The embedding cache is keyed by (embedder id, kind, text hash), so text that did not change is
never embedded twice, whichever article it moves to. The file table remembers each article file
as it was parsed (modification time, size, the article), so an incremental index reads only the
files that changed."""

import datetime as dt
import hashlib
import json
import os
import sqlite3
from dataclasses import asdict
from pathlib import Path

import numpy as np
import sqlite_utils

from kb.article import Article
from kb.errors import ConfigError

TAG_SEP = "\x1f"  # tags are short words; a control character never occurs in one


def text_key(kind: str, text: str) -> str:
    return hashlib.sha256(f"{kind}\x00{text}".encode()).hexdigest()[:24]


class Store:
    def __init__(self, path: Path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
        except (sqlite3.Error, OSError) as exc:  # sqlite's own message names no file
            raise ConfigError(f"{path} cannot be opened ({exc}): check that KB_DATA_DIR is "
                              "writable and has space") from None
        self.db = sqlite_utils.Database(conn)
        self._create()

    def _create(self) -> None:
        # The tables of the first layout recorded every article on every build; dropped.
        for old in ("articles", "passages"):
            if old in self.db.table_names():
                self.db[old].drop()
        if "files" in self.db.table_names() and "ctime_ns" not in self.db["files"].columns_dict:
            self.db["files"].drop()  # a parse cache: rebuilt by the next index
        if "files" not in self.db.table_names():
            self.db["files"].create(
                {"path": str, "mtime_ns": int, "ctime_ns": int, "size": int, "checked_ns": int,
                 "id": str,
                 "content_hash": str, "tags": str, "article": str},
                pk="path",
            )
        if "embeddings" not in self.db.table_names():
            self.db["embeddings"].create(
                {"embedder": str, "key": str, "dim": int, "vector": bytes}, pk=("embedder", "key")
            )

    # Parsed files.
    def files(self) -> dict[str, tuple[int, int, int, int, str, str, str]]:
        """path -> (mtime_ns, ctime_ns, size, checked_ns (when it was read), id, content hash,
        tags joined by TAG_SEP). Plain tuples: this is read for every file on every index."""
        rows = self.db.execute(
            "SELECT path, mtime_ns, ctime_ns, size, checked_ns, id, content_hash, tags FROM files")
        return {row[0]: row[1:] for row in rows}

    def save_files(self, rows: list[tuple[str, os.stat_result, int, Article]]) -> None:
        """(path, stat, checked_ns, article) of files just read."""
        with self.db.conn:
            self.db["files"].insert_all(
                ({"path": path, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
                  "size": st.st_size, "checked_ns": c, "id": a.id,
                  "content_hash": a.content_hash, "tags": TAG_SEP.join(a.tags),
                  "article": json.dumps(_article_row(a), ensure_ascii=False)}
                 for path, st, c, a in rows),
                replace=True,
            )

    def file_of(self, article_id: str) -> str | None:
        """The file the last scan found this article in."""
        row = self.db.execute("SELECT path FROM files WHERE id = ? LIMIT 1",
                              [article_id]).fetchone()
        return row[0] if row else None

    def article_files(self) -> dict[str, str]:
        """Article id -> the file the last scan found it in."""
        return dict(self.db.execute("SELECT id, path FROM files"))

    def forget_files(self, paths: list[str]) -> None:
        with self.db.conn:
            for start in range(0, len(paths), 500):
                chunk = paths[start : start + 500]
                self.db.execute(
                    f"DELETE FROM files WHERE path IN ({','.join('?' * len(chunk))})", chunk)

    def articles(self, paths: list[str]) -> dict[str, Article]:
        """The parsed articles of recorded files, by path."""
        found = {}
        for start in range(0, len(paths), 500):
            chunk = paths[start : start + 500]
            rows = self.db.execute(
                f"SELECT path, article FROM files WHERE path IN ({','.join('?' * len(chunk))})",
                chunk)
            found.update((path, _article_from_row(json.loads(data))) for path, data in rows)
        return found

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
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO embeddings (embedder, key, dim, vector) "
                "VALUES (?, ?, ?, ?)",
                ((embedder, k, len(v), np.asarray(v, dtype=np.float32).tobytes())
                 for k, v in vectors.items()),
            )

    def keep_vectors(self, embedder: str, keys: set[str]) -> None:
        """Forget this embedder's vectors except those of `keys`."""
        with self.db.conn:
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS kept (key TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM kept")
            self.db.conn.executemany("INSERT OR IGNORE INTO kept VALUES (?)",
                                     ((k,) for k in keys))
            self.db.execute("DELETE FROM embeddings WHERE embedder = ? AND key NOT IN "
                            "(SELECT key FROM kept)", [embedder])
            self.db.execute("DELETE FROM kept")

    def forget_vectors(self, embedder: str) -> None:
        with self.db.conn:
            self.db.execute("DELETE FROM embeddings WHERE embedder = ?", [embedder])

    def close(self) -> None:
        self.db.conn.close()


def _article_row(a: Article) -> dict:
    row = asdict(a)
    row["effective"] = a.effective.isoformat() if a.effective else None
    row["effective_to"] = a.effective_to.isoformat() if a.effective_to else None
    return row


def _article_from_row(row: dict) -> Article:
    for key in ("tags", "similar", "related"):
        row[key] = tuple(row[key])
    for key in ("effective", "effective_to"):
        row[key] = dt.date.fromisoformat(row[key]) if row[key] else None
    return Article(**row)
