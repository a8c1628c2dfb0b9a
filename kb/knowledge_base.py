"""KnowledgeBase: the one object the CLI and the server call."""

import threading
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer import finetune, segments, snapshot
from indexer.batching import BatchingEmbedder
from indexer.build import (
    build_snapshot,
    dictionary_terms,
    dictionary_words,
    embed_kind,
    passage_text,
    rebuild_reason,
    update_refused,
    update_snapshot,
)
from indexer.embedders import E5Embedder, Embedder, make_embedder
from indexer.finetune import Tuned
from indexer.modelfile import ModelFile, stock_path
from indexer.search import Hit, Query, RankParams, Searcher
from indexer.segment import load_dictionary
from indexer.segments import read_json
from kb import allocator, tuning
from kb.errors import ArticleError, BadQuery, ConfigError, KBError, NotFound
from kb.locks import file_lock
from kb.scan import scan
from kb.store import Store, text_key

NOTHING = "none: nothing changed"
EMBED_BATCH = 256  # texts per model call; bench/speed.py compares the build with the model


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    embedded: int = 0  # texts sent to the model (the rest came from the cache)
    errors: list[ArticleError] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # broken file -> id served as it was
    snapshot: str = ""
    build: str = ""  # "update", "full: <why>" or "none: nothing changed"
    resegmented: list[str] = field(default_factory=list)  # unchanged, cut anew for new words


def report_errors(report: IndexReport) -> list[str]:
    """A line per broken file, saying whether agents still get its last good version."""
    return [f"kept the last good version of '{report.kept[e.path]}': {e}" if e.path in report.kept
            else f"skipped {e}" for e in report.errors]


@dataclass
class TuneReport:
    path: Path  # the tuned model file, absolute: the server may start from another folder
    tuned: Tuned
    errors: list[ArticleError] = field(default_factory=list)  # broken files left out
    removed: list[Path] = field(default_factory=list)  # older tuned copies nothing needs


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
        self._pointer_seen = None  # snapshot.pointer_stamp when _searcher_name was last read
        self._batcher: BatchingEmbedder | None = None
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self._embedder_spec)
        return self._embedder

    def _query_embedder(self) -> Embedder:
        """The model as searches use it: concurrent queries share model calls."""
        if self._batcher is None or self._batcher.inner is not self.embedder:
            self._batcher = BatchingEmbedder(self.embedder)
        return self._batcher

    # Indexing.
    def reindex(self, full: bool = False, progress: Callable[[int, int], None] | None = None,
                waiting: Callable[[], None] | None = None):
        """Index content_dir. Only files that changed are read and only text missing from the
        embedding cache is embedded; on a large index the changes go into a small update
        segment (indexer/build.py), so an edit is searchable in well under a second.
        `full` re-reads every file, embeds every text anew and builds a new base. `waiting` is
        called if another build holds the lock."""
        userdict, synonyms = load_dictionary(self.content_dir / "_dict")
        with self._build_lock(waiting), self._store() as store:
            # What a build that failed (a full disk) left half-written goes first: kept, it
            # would hold the space the next build needs.
            snapshot.clean(self.index_dir)
            model = self.embedder
            found = scan(self.content_dir, store, reread=full)
            report = IndexReport(errors=found.errors, kept=found.kept)
            live, manifest, catalog = self._live_index()
            now = found.hashes
            if not now and len(catalog.keys()):
                # An unmounted share or a wrong checkout looks like this, and publishing it
                # would leave every agent with no answers.
                raise ConfigError(
                    f"{self.content_dir} holds no articles but the live index has "
                    f"{len(catalog.keys())}: the live index is kept. Check KB_CONTENT_DIR; to "
                    f"empty the knowledge base on purpose, delete {self.index_dir} first")
            report.added = sorted(now.keys() - catalog.keys())
            report.removed = sorted(catalog.keys() - now.keys())
            report.changed = sorted(i for i in now.keys() & catalog.keys()
                                    if now[i] != catalog.hashes[i])
            report.unchanged = len(now) - len(report.added) - len(report.changed)
            dictionary = {"terms": dictionary_terms(found.tags(), userdict), "synonyms": synonyms}
            reason = "a full build was asked for" if full else "there is no index yet"
            if live and not full:
                reason = self._plan(live, manifest, catalog, dictionary, report)
            if reason == NOTHING:
                report.build, report.snapshot = reason, live.name
                return report
            # A full build embeds everything anew but keeps the cache until it has published:
            # a build killed halfway used to leave an empty cache, and the next edit re-embedded
            # the whole knowledge base.
            used: set[str] = set()
            embed = self._cached_embed(store, report, progress, reuse=not full, used=used)
            if reason is None:
                redo = sorted({*report.added, *report.changed, *report.resegmented})
                folder = update_snapshot(
                    live, manifest, catalog, found.articles(redo, store),
                    set(report.removed), dictionary, embed, self.index_dir,
                )
                report.build = "update"
            else:
                folder = build_snapshot(
                    found.articles(list(now), store), userdict, synonyms, embed, model.model_id,
                    model.dim, self.index_dir, self.to_simplified,
                    previous=None if full else live,
                )
                report.build = f"full: {reason}"
                if full:
                    store.keep_vectors(model.model_id, used)  # what the new index holds
            snapshot.clean(self.index_dir)
        report.snapshot = folder.name
        return report

    def tune(self, epochs: int = finetune.EPOCHS, max_pairs: int = finetune.MAX_PAIRS,
             progress: Callable[[int, int], None] | None = None) -> "TuneReport":
        """Tune e5 on this knowledge base's own questions and answers (indexer/finetune.py) and
        write the tuned copy to data_dir/models/, named by its content. Always starts from the
        stock model, so tuning again does not drift. Broken articles are left out and listed.
        The live index is left as it is: the tuned model serves once KB_EMBEDDER names the
        file and the index is rebuilt with it."""
        if not (self._embedder_spec == "e5" or str(self._embedder_spec).startswith("e5:")
                or isinstance(self._embedder_spec, E5Embedder)):
            raise ConfigError("kb tune tunes the default model, e5; with KB_EMBEDDER set to "
                              "another model, tune that model with its own tools")
        with self._build_lock(), self._store() as store:  # the scan writes the file cache
            found = scan(self.content_dir, store)
            articles = found.articles(sorted(found.hashes), store)
        # The tuning itself runs outside the lock: builds and edits go on meanwhile.
        tuned = finetune.tune(ModelFile(stock_path()), articles, epochs, max_pairs,
                              self.to_simplified, progress=progress)
        path = self.data_dir / "models" / tuning.tuned_name(tuned.model.digest())
        path = tuned.model.save(path).resolve()
        return TuneReport(path, tuned, found.errors, tuning.prune(self, keep=path))

    def _plan(self, live: Path, manifest: dict, catalog: segments.Catalog, dictionary: dict,
              report: "IndexReport") -> str | None:
        """NOTHING, None for an update segment, or why a full build is needed. Articles that
        only need cutting anew for changed dictionary words go to report.resegmented."""
        reason = rebuild_reason(manifest, self.embedder.model_id, self.to_simplified)
        if reason:
            return reason
        touched = {*report.added, *report.changed}
        old = read_json(live / "dictionary.json")
        if not touched and not report.removed and old == dictionary:
            return NOTHING
        words = dictionary_words(old) ^ dictionary_words(dictionary)
        report.resegmented = sorted(segments.articles_containing(live, manifest, words)
                                    - touched - set(report.removed))
        return update_refused(manifest, catalog, len(touched) + len(report.resegmented))

    def _live_index(self) -> tuple[Path | None, dict, segments.Catalog]:
        """The live snapshot's folder, manifest and catalog; none of them without one, or when
        it is unreadable (the build replaces it)."""
        try:
            folder = snapshot.current_folder(self.index_dir)
            manifest = snapshot.check(folder)
            return folder, manifest, segments.catalog(folder, manifest)
        except (KBError, OSError, ValueError, KeyError, TypeError):
            return None, {}, segments.Catalog()

    def _cached_embed(self, store: Store, report: IndexReport, progress, reuse: bool = True,
                      used: set[str] | None = None):
        """`reuse`: take vectors from the cache; `used` collects the keys embedded."""
        model = self.embedder

        def embed(texts: list[str], kind: str) -> np.ndarray:
            keys = [text_key(kind, t) for t in texts]
            if used is not None:
                used.update(keys)
            found = store.cached_vectors(model.model_id, keys) if reuse else {}
            todo = list({k: t for k, t in zip(keys, texts) if k not in found}.items())
            for start in range(0, len(todo), EMBED_BATCH):
                batch = todo[start : start + EMBED_BATCH]
                vectors = model.encode([t for _, t in batch], kind)
                new = {k: v for (k, _), v in zip(batch, vectors)}
                store.cache_vectors(model.model_id, new)
                found.update(new)
                report.embedded += len(batch)
                if progress:
                    progress(min(start + EMBED_BATCH, len(todo)), len(todo))
            out = np.empty((len(keys), model.dim), dtype=np.float32)
            for row, key in enumerate(keys):
                out[row] = found[key]
            return out

        return embed

    def embed_questions(self, questions: list[str]) -> np.ndarray:
        """Question vectors as the index makes them, from the embedding cache where it has them
        (`kb lint --deep` compares them)."""
        texts = [passage_text("title", q, self.to_simplified) for q in questions]
        with self._store() as store:
            return self._cached_embed(store, IndexReport(), None)(texts, embed_kind("title"))

    def _build_lock(self, waiting: Callable[[], None] | None = None):
        return file_lock(self.data_dir / "build.lock", waiting)

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
        # Every request asks: a stat of the pointer costs a fifth of reading it (1.6 vs 7.5 us).
        stamp = snapshot.pointer_stamp(self.index_dir)
        if stamp is not None and stamp == self._pointer_seen and self._searcher is not None:
            return self._searcher
        name = snapshot.pointer_name(self.index_dir)
        if self._searcher is None or name != self._searcher_name:
            with self._lock:
                if self._searcher is None or name != self._searcher_name:
                    folder = snapshot.current_folder(self.index_dir)
                    self._searcher = Searcher(folder, self._query_embedder(), self.params)
                    self._searcher_name = folder.name
                    # Once the last request holding it is done, its memory goes back.
                    weakref.finalize(self._searcher, _released).atexit = False
        if name == self._searcher_name:  # else published meanwhile: read it again next time
            self._pointer_seen = stamp
        return self._searcher

    def prepare(self, query: str, searcher: Searcher | None = None) -> Query:
        """The query cut with the dictionary of `searcher`'s snapshot (the live one by default):
        a request passes the searcher it holds, so its words and its scores come from one
        snapshot even when a new one is published in between."""
        if len(query) > self.max_query_chars:
            raise BadQuery(
                f"the query is {len(query)} characters; the limit is {self.max_query_chars}"
            )
        return (searcher or self.searcher()).prepare(query)

    def search(self, query: str, k: int = 10, category: str | None = None) -> list[Hit]:
        searcher = self.searcher()
        return searcher.search_query(self.prepare(query, searcher), k, category)

    def get(self, article_id: str, searcher: Searcher | None = None) -> dict:
        searcher = searcher or self.searcher()
        index = searcher.by_id.get(article_id)
        if index is None:
            raise NotFound(f"no article '{article_id}'")
        return searcher.articles[index]

    def article_file(self, article_id: str) -> Path:
        """Where the article's file is now, as the last scan of content_dir found it. The
        index's record keeps the path it was built from, and an unchanged article is not
        rebuilt, so that path goes stale once the file moves, or the whole content folder does
        (a copy, a restored backup, another mount point): writing there would edit another
        copy of the content, or fail."""
        self.get(article_id)  # NotFound for an article the index does not hold
        with self._store() as store:
            found = store.file_of(article_id)
        if found is None:
            raise NotFound(f"no article '{article_id}': its file is gone")
        return Path(found)

    def article_files(self) -> dict[str, str]:
        """Article id -> its file now (article_file says why not the record's path)."""
        with self._store() as store:
            return store.article_files()

    def articles(self) -> list[dict]:
        return self.searcher().articles

    def stats(self) -> dict:
        s = self.searcher()
        categories: dict[str, int] = {}
        for a in s.articles:
            categories[a["category"]] = categories.get(a["category"], 0) + 1
        return {**s.manifest, "snapshot": s.folder.name, "categories": categories}


def _released() -> None:
    """A replaced searcher was freed (kb.allocator.give_back_freed says why this matters)."""
    allocator.give_back_freed()
