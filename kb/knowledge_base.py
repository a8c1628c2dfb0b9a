"""KnowledgeBase: the one object the CLI and the server call."""

import fcntl
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer import snapshot
from indexer.build import build_snapshot
from indexer.embedders import Embedder, make_embedder
from indexer.search import Hit, Query, RankParams, Searcher
from indexer.segment import load_dictionary
from kb.article import Article, load_folder
from kb.errors import ArticleError, BadQuery, NotFound
from kb.store import Store, text_key

EMBED_BATCH = 64


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    embedded: int = 0  # texts sent to the model (the rest came from the cache)
    errors: list[ArticleError] = field(default_factory=list)
    snapshot: str = ""


class KnowledgeBase:
    def __init__(
        self,
        content_dir: Path,
        data_dir: Path,
        embedder: str | Embedder = "e5",
        params: RankParams | None = None,
        to_simplified: bool = True,
        max_query_chars: int = 200,
    ):
        self.content_dir = Path(content_dir)
        self.data_dir = Path(data_dir)
        self.index_dir = self.data_dir / "index"
        self._embedder_spec = embedder
        self._embedder: Embedder | None = None if isinstance(embedder, str) else embedder
        self.params = params or RankParams()
        self.to_simplified = to_simplified
        self.max_query_chars = max_query_chars
        self._searcher: Searcher | None = None
        self._searcher_name = None
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self._embedder_spec)
        return self._embedder

    # Indexing.
    def reindex(self, full: bool = False, progress: Callable[[int, int], None] | None = None):
        """Index content_dir. Unchanged text is taken from the embedding cache, never re-embedded;
        `full` clears the cache for this embedder first."""
        articles, errors = load_folder(self.content_dir)
        terms, synonyms = load_dictionary(self.content_dir / "_dict")
        report = IndexReport(errors=errors)
        with self._build_lock(), self._store() as store:
            if full:
                store.db.execute("DELETE FROM embeddings WHERE embedder = ?",
                                 [self.embedder.model_id])
            before = store.indexed_hashes()
            now = {a.id: a.content_hash for a in articles}
            report.added = sorted(set(now) - set(before))
            report.removed = sorted(set(before) - set(now))
            report.changed = sorted(i for i in now if i in before and before[i] != now[i])
            report.unchanged = len(now) - len(report.added) - len(report.changed)
            embed = self._cached_embed(store, report, progress)
            folder = build_snapshot(
                articles, terms, synonyms, embed, self.embedder.model_id, self.embedder.dim,
                self.index_dir, self.to_simplified,
            )
            store.record_articles(articles, _passages_by_article(articles))
            snapshot.clean(self.index_dir)
        report.snapshot = folder.name
        return report

    def _cached_embed(self, store: Store, report: IndexReport, progress):
        model = self.embedder

        def embed(texts: list[str], kind: str) -> np.ndarray:
            keys = [text_key(kind, t) for t in texts]
            found = store.cached_vectors(model.model_id, keys)
            todo = sorted({k: t for k, t in zip(keys, texts) if k not in found}.items())
            for start in range(0, len(todo), EMBED_BATCH):
                batch = todo[start : start + EMBED_BATCH]
                vectors = model.encode([t for _, t in batch], kind)
                new = {k: v for (k, _), v in zip(batch, vectors)}
                store.cache_vectors(model.model_id, new)
                found.update(new)
                report.embedded += len(batch)
                if progress:
                    progress(min(start + EMBED_BATCH, len(todo)), len(todo))
            if not keys:
                return np.zeros((0, model.dim), dtype=np.float32)
            return np.stack([found[k] for k in keys])

        return embed

    @contextmanager
    def _build_lock(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "build.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def _store(self):
        store = Store(self.data_dir / "kb.sqlite")
        try:
            yield store
        finally:
            store.close()

    # Searching.
    def searcher(self) -> Searcher:
        """The searcher of the live snapshot, reloaded when a new snapshot has been published.
        A caller keeps the object it got for a whole request, so a request never mixes two."""
        name = (self.index_dir / snapshot.POINTER).read_text(encoding="utf-8").strip() \
            if (self.index_dir / snapshot.POINTER).exists() else None
        if self._searcher is None or name != self._searcher_name:
            with self._lock:
                if self._searcher is None or name != self._searcher_name:
                    folder = snapshot.current_folder(self.index_dir)
                    self._searcher = Searcher(folder, self.embedder, self.params)
                    self._searcher_name = folder.name
        return self._searcher

    def prepare(self, query: str) -> Query:
        if len(query) > self.max_query_chars:
            raise BadQuery(
                f"the query is {len(query)} characters; the limit is {self.max_query_chars}"
            )
        return self.searcher().prepare(query)

    def search(self, query: str, k: int = 10, category: str | None = None) -> list[Hit]:
        searcher = self.searcher()
        return searcher.search_query(self.prepare(query), k, category)

    def get(self, article_id: str) -> dict:
        searcher = self.searcher()
        index = searcher.by_id.get(article_id)
        if index is None:
            raise NotFound(f"no article '{article_id}'")
        return searcher.articles[index]

    def articles(self) -> list[dict]:
        return self.searcher().articles

    def stats(self) -> dict:
        s = self.searcher()
        categories: dict[str, int] = {}
        for a in s.articles:
            categories[a["category"]] = categories.get(a["category"], 0) + 1
        return {**s.manifest, "snapshot": s.folder.name, "categories": categories}


def _passages_by_article(articles: list[Article]) -> dict[str, list[tuple]]:
    from indexer.passages import article_passages

    return {a.id: article_passages(a) for a in articles}
