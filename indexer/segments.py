"""Segments: how one snapshot holds a large base and small updates, and how they load as one.

A segment is an immutable set of files for some articles: their records, passages, both BM25
fields, vectors and a catalog (ids, content hashes, tags). The base segment's files have plain
names (articles.json, dense.faiss, ...); an update segment's names start with its prefix
(`u-<uid>.`). The manifest lists the segments and, for each, the articles that a later segment
replaced or that were removed ("deleted"). A new snapshot hard-links the files of the segments
it keeps, so an update writes only its own small files.

Loaded segments are shared by every snapshot of this process that holds them: reloading after
an update reads only the new segment."""

import itertools
import json
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.groups import PassageLayout
from indexer.lexical import BM25, SegmentedBM25
from indexer.vector import SegmentedVectors, VectorIndex

FILES = (
    "articles.json", "passages.json", "catalog.json", "dense.faiss",
    "words.npz", "words.idf.npy", "words.vocab.txt", "chars.npz", "chars.idf.npy",
    "chars.vocab.txt", "questions.npy",
)
# A segment entry's "columns" when its lexical columns are stored in passage_layout order; those
# written before (2026-12-03) are in passage order and are put in that order at load.
COLUMNS = "layout"
# Snapshots of format 1 have no catalog; segments written before 2026-12-02 no question hashes
# (they are computed when first asked for).
OPTIONAL = ("catalog.json", "questions.npy")


@dataclass(eq=False)
class Segment:
    uid: str
    articles: list[dict]
    owner: np.ndarray  # passage -> article, within the segment
    kinds: list[str]
    texts: list[str]
    words: BM25
    chars: BM25
    dense: VectorIndex
    layout: PassageLayout  # the order of the lexical columns
    questions: np.ndarray | None = None  # build.question_hashes; None until needed, if absent

    def question_hashes(self) -> np.ndarray:
        if self.questions is None:
            from indexer.build import question_hashes  # build imports this module

            self.questions = question_hashes(self.kinds, self.texts)
        return self.questions


@dataclass
class View:
    """A snapshot's live articles and passages, numbered across its segments in order."""

    articles: list[dict]
    owner: np.ndarray
    kinds: list[str]
    texts: list[str]
    words: SegmentedBM25
    chars: SegmentedBM25
    dense: VectorIndex | SegmentedVectors
    parts: list[tuple[Segment, np.ndarray | None]] = field(default_factory=list)  # live passages
    alive: list[np.ndarray | None] = field(default_factory=list)  # each part's live articles

    def question_hashes(self) -> np.ndarray:
        """build.question_hashes of every live passage, in passage order."""
        return np.concatenate([s.question_hashes() if live is None else s.question_hashes()[live]
                               for s, live in self.parts]) if self.parts else np.zeros(0, np.int64)


# Segments of the snapshots loaded last, by uid, with the index folder they belong to. Loading
# a snapshot drops those of its index folder that it no longer holds.
_loaded: dict[str, tuple[Path, Segment]] = {}
_loaded_lock = threading.Lock()


def entries(manifest: dict, folder: Path) -> list[dict]:
    """The manifest's segments; a format-1 snapshot is one base segment named by its folder."""
    return manifest.get("segments") or [{"uid": folder.name, "prefix": "", "deleted": []}]


def required_files(manifest: dict, folder: Path) -> list[str]:
    return [e["prefix"] + name for e in entries(manifest, folder) for name in FILES
            if name not in OPTIONAL]


def read_json(path: Path):
    with open(path, "rb") as fh:
        return json.loads(fh.read())


def load_segment(folder: Path, entry: dict) -> Segment:
    segment = _loaded.get(entry["uid"], (None, None))[1]
    if segment is None:
        p = f"{folder}/{entry['prefix']}"
        # faiss and numpy read without the GIL, so the vectors load while the JSON parses.
        with ThreadPoolExecutor(1) as pool:
            dense = pool.submit(VectorIndex.load, f"{p}dense.faiss")
            passages = read_json(Path(f"{p}passages.json"))
            owner = np.asarray(passages["owner"], dtype=np.int64)
            kinds = [sys.intern(k) for k in passages["kind"]]  # three words, not 300,000
            articles = read_articles(Path(f"{p}articles.json"), passages["text"], owner)
            layout = passage_layout(owner, kinds, len(articles))
            words, chars = BM25.load(f"{p}words"), BM25.load(f"{p}chars")
            for name, index in (("words", words), ("chars", chars)):
                if index.n_docs != len(owner):  # a file from another build can still parse
                    raise ValueError(f"{p}{name}.npz has {index.n_docs} passages, "
                                     f"passages.json {len(owner)}")
            if entry.get("columns") != COLUMNS:  # written before the layout was stored
                order = layout.order
                words, chars = words.with_columns(order), chars.with_columns(order)
            segment = Segment(
                uid=entry["uid"], articles=articles, owner=owner, kinds=kinds,
                texts=passages["text"], words=words, chars=chars, dense=dense.result(),
                layout=layout,
                questions=read_questions(Path(f"{p}questions.npy"), len(passages["text"])),
            )
    return segment


def passage_layout(owner: np.ndarray, kinds: list[str], articles: int) -> PassageLayout:
    """The order a segment's lexical columns are written in (build) and read in (search)."""
    return PassageLayout(owner, np.array([k == "answer" for k in kinds], dtype=bool), articles)


def read_questions(path: Path, passages: int) -> np.ndarray | None:
    """The segment's question hashes (build.question_hashes); None for a segment without."""
    if not path.exists():
        return None
    hashes = np.load(path)
    if hashes.shape != (passages,):  # a damaged file can still parse
        raise ValueError(f"{path.name} holds {hashes.shape} hashes for {passages} passages")
    return hashes


def read_articles(path: Path, texts: list[str], owner: np.ndarray) -> list[dict]:
    """articles.json, each title and similar question made the very string its passage holds
    (article_passages order) and categories and tags interned: JSON gives every occurrence its
    own string, and at 50,000 articles the copies took 35 MB."""
    firsts = iter(np.searchsorted(owner, np.arange(owner[-1] + 1 if len(owner) else 0)).tolist())

    def share(record: dict) -> dict:
        if "similar" not in record:
            return record
        start = next(firsts, len(texts))
        questions = texts[start : start + 1 + len(record["similar"])]
        if questions == [record["title"], *record["similar"]]:
            record["title"], record["similar"] = questions[0], questions[1:]
        record["category"] = sys.intern(record["category"])
        record["tags"] = [sys.intern(t) for t in record["tags"]]
        return record

    with open(path, "rb") as fh:
        return json.loads(fh.read(), object_hook=share)


def load_view(folder: Path, manifest: dict) -> View:
    listed = entries(manifest, folder)
    segments = [load_segment(folder, e) for e in listed]
    with _loaded_lock:
        for uid, (index_dir, _) in list(_loaded.items()):
            if index_dir == folder.parent:
                del _loaded[uid]
        _loaded.update((e["uid"], (folder.parent, s)) for e, s in zip(listed, segments))
    positions = [s.layout.position for s in segments]
    if len(segments) == 1 and not listed[0]["deleted"]:
        s = segments[0]
        return View(s.articles, s.owner, s.kinds, s.texts,
                    SegmentedBM25([s.words], [None], positions),
                    SegmentedBM25([s.chars], [None], positions), s.dense, [(s, None)], [None])
    articles, owners, kinds, texts, live_passages, live_articles = [], [], [], [], [], []
    for s, e in zip(segments, listed):
        alive = np.ones(len(s.articles), dtype=bool)
        alive[np.asarray(e["deleted"], dtype=np.int64)] = False
        renumber = np.cumsum(alive) - 1 + len(articles)
        live = np.flatnonzero(alive[s.owner]) if len(s.owner) else np.zeros(0, np.int64)
        owners.append(renumber[s.owner[live]])
        if alive.all():
            articles.extend(s.articles)
            kinds.extend(s.kinds)
            texts.extend(s.texts)
            live_passages.append(None)
            live_articles.append(None)
        else:
            articles.extend(a for a, ok in zip(s.articles, alive) if ok)
            kinds.extend(s.kinds[i] for i in live.tolist())
            texts.extend(s.texts[i] for i in live.tolist())
            live_passages.append(live)
            live_articles.append(alive)
    return View(
        articles=articles,
        owner=np.concatenate(owners).astype(np.int64),
        kinds=kinds,
        texts=texts,
        words=SegmentedBM25([s.words for s in segments], live_passages, positions),
        chars=SegmentedBM25([s.chars for s in segments], live_passages, positions),
        dense=SegmentedVectors([s.dense for s in segments], live_passages),
        parts=list(zip(segments, live_passages)),
        alive=live_articles,
    )


@dataclass
class Catalog:
    """The live articles of a snapshot, known without loading it."""

    hashes: dict[str, str] = field(default_factory=dict)  # id -> content hash
    where: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (segment, index)
    passages: dict[str, int] = field(default_factory=dict)  # id -> passages

    def keys(self):
        return self.hashes.keys()

    def __len__(self) -> int:
        return len(self.hashes)


_catalogs: dict[str, dict] = {}  # segment uid -> its catalog file: segments never change


def catalog(folder: Path, manifest: dict) -> Catalog:
    out = Catalog()
    for n, e in enumerate(entries(manifest, folder)):
        data = _catalogs.get(e["uid"])
        if data is None:
            path = folder / f"{e['prefix']}catalog.json"
            data = read_json(path) if path.exists() else _catalog_of_format_1(folder)
            while len(_catalogs) >= 16:
                _catalogs.pop(next(iter(_catalogs)))
            _catalogs[e["uid"]] = data
        ids = data["ids"]
        out.hashes.update(zip(ids, data["hashes"]))
        out.where.update(zip(ids, zip(itertools.repeat(n), range(len(ids)))))
        out.passages.update(zip(ids, data["passages"]))
        for i in e["deleted"]:
            for table in (out.hashes, out.where, out.passages):
                del table[ids[i]]
    return out


def _catalog_of_format_1(folder: Path) -> dict:
    records = read_json(folder / "articles.json")
    owner = read_json(folder / "passages.json")["owner"]
    return {"ids": [r["id"] for r in records], "hashes": [r["content_hash"] for r in records],
            "passages": np.bincount(owner, minlength=len(records)).tolist()}


def articles_containing(folder: Path, manifest: dict, words: set[str]) -> set[str]:
    """Ids of live articles with a passage that holds one of the words."""
    if not words:
        return set()
    pattern = re.compile("|".join(map(re.escape, sorted(words, key=len, reverse=True))))
    out = set()
    for e in entries(manifest, folder):
        passages = read_json(folder / f"{e['prefix']}passages.json")
        ids = read_json(folder / f"{e['prefix']}catalog.json")["ids"]
        deleted = set(e["deleted"])
        for owner, text in zip(passages["owner"], passages["text"]):
            if owner not in deleted and pattern.search(text.lower()):
                out.add(ids[owner])
    return out
