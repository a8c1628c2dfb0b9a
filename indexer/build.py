"""Build snapshots from articles: a full build writes one base segment; an update keeps the live
snapshot's segments (hard links) and adds one small segment with the changed articles, so a
one-article edit costs milliseconds whatever the size of the knowledge base."""

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from datetime import date
from pathlib import Path

import numpy as np

from indexer import ranker, scale, segments, snapshot
from indexer.lexical import BM25
from indexer.normalize import key_hash, normalize, question_key, strip_fillers
from indexer.passages import QUESTION_KINDS, article_passages
from indexer.segment import Segmenter, char_grams
from indexer.vector import VectorIndex
from kb.article import Article
from kb.errors import CorruptIndex
from kb.render import render_html

# embed(texts, kind) -> vectors; the caller puts a cache in front of the model.
EmbedFn = Callable[[list[str], str], np.ndarray]

# Below this many live passages every build is a full one: it takes seconds, and one segment
# ranks exactly as built. Above it, changes go into update segments.
UPDATES_FROM = 20_000
MAX_UPDATES = 6  # update segments kept before they are folded into one
MERGE_AT = 0.10  # share of articles in update segments that calls for a new base


def passage_text(kind: str, text: str, to_simplified: bool = True) -> str:
    """The text a passage is matched by: normalised, and for questions without fillers, as a
    query is, so a similar question and the same words typed by an agent meet."""
    text = normalize(text, to_simplified)
    return strip_fillers(text) if kind in QUESTION_KINDS else text


def embed_kind(kind: str) -> str:
    # Questions are matched question-to-question, so they take the query side of e5.
    return "query" if kind in QUESTION_KINDS else "passage"


def dictionary_terms(tags: Iterable[str], userdict: list[str]) -> list[str]:
    """The domain dictionary: userdict.txt plus the articles' tags."""
    return sorted({t for t in [*userdict, *tags] if 1 < len(t) <= 12})


def article_record(a: Article) -> dict:
    record = asdict(a)
    record["effective"] = a.effective.isoformat() if a.effective else None
    record["effective_to"] = a.effective_to.isoformat() if a.effective_to else None
    record["answer_html"] = render_html(a.answer)
    record["basis_html"] = render_html(a.basis) if a.basis else ""
    return record


def article_from_record(record: dict) -> Article:
    """The article an index record was made from (the inverse of article_record)."""
    values = {f.name: record[f.name] for f in fields(Article) if f.name in record}
    for key in ("tags", "similar", "related"):
        values[key] = tuple(values.get(key) or ())
    for key in ("effective", "effective_to"):
        values[key] = date.fromisoformat(values[key]) if values.get(key) else None
    return Article(**values)


def question_hashes(kinds: list[str], texts: list[str]) -> np.ndarray:
    """key_hash(question_key(text)) of each question passage, 0 for answer passages."""
    return np.array([key_hash(question_key(t)) if k in QUESTION_KINDS else 0
                     for k, t in zip(kinds, texts)], dtype=np.int64)


@dataclass
class Built:
    entry: dict  # the segment as the manifest lists it
    vectors: np.ndarray
    owners: np.ndarray
    kinds: list[str]


def write_segment(
    folder: Path, prefix: str, articles: list[Article], seg: Segmenter, embed: EmbedFn,
    dim: int, to_simplified: bool, avgdl: dict | None = None,
) -> Built:
    """Write one segment's files for the articles (sorted by id) into the folder."""
    owners, kinds, texts, matched, counts = [], [], [], [], []
    for i, a in enumerate(articles):
        rows = article_passages(a)
        counts.append(len(rows))
        for kind, text in rows:
            owners.append(i)
            kinds.append(kind)
            texts.append(text)
            matched.append(passage_text(kind, text, to_simplified))

    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    for kind in ("query", "passage"):
        rows = [i for i, k in enumerate(kinds) if embed_kind(k) == kind]
        if rows:
            vectors[rows] = embed([matched[i] for i in rows], kind)

    p = f"{folder}/{prefix}"
    avgdl = avgdl or {}
    # Lexical columns in the order the search reads them (segments.passage_layout).
    in_order = [matched[i] for i in segments.passage_layout(
        np.asarray(owners, dtype=np.int64), kinds, len(articles)).order.tolist()]
    words = BM25.build([seg.words(t) for t in in_order], avgdl.get("words"))
    chars = BM25.build([char_grams(t) for t in in_order], avgdl.get("chars"))
    words.save(f"{p}words")
    chars.save(f"{p}chars")
    dense = VectorIndex.build(vectors, dim)
    dense.save(f"{p}dense.faiss")
    # Each question's key, hashed: the editor checks a saved question against every other
    # article's with a comparison of numbers, not 300,000 normalisations (4 s at 50,000).
    np.save(f"{p}questions.npy", question_hashes(kinds, texts))
    snapshot.write_json(Path(f"{p}articles.json"), [article_record(a) for a in articles])
    snapshot.write_json(Path(f"{p}passages.json"),
                        {"owner": owners, "kind": kinds, "text": texts})
    snapshot.write_json(Path(f"{p}catalog.json"), {
        "ids": [a.id for a in articles], "hashes": [a.content_hash for a in articles],
        "passages": counts,
    })
    entry = {
        "uid": uuid.uuid4().hex[:12], "prefix": prefix, "articles": len(articles),
        "passages": len(texts), "deleted": [], "vector_index": dense.kind,
        "columns": segments.COLUMNS,
        "avgdl": {"words": words.avgdl, "chars": chars.avgdl},
    }
    return Built(entry, vectors, np.asarray(owners, dtype=np.int64), kinds)


def build_snapshot(
    articles: list[Article],
    userdict: list[str],
    synonyms: list[list[str]],
    embed: EmbedFn,
    embedder_id: str,
    dim: int,
    index_dir: Path,
    to_simplified: bool = True,
    previous: Path | None = None,
) -> Path:
    """A full build: every article in one base segment. The learned ranker starts from the
    one in `previous` (the live snapshot) where it has one."""
    started = time.time()
    articles = sorted(articles, key=lambda a: a.id)
    terms = dictionary_terms((t for a in articles for t in a.tags), userdict)
    seg = Segmenter(terms, synonyms)
    folder = snapshot.new_folder(index_dir)
    built = write_segment(folder, "", articles, seg, embed, dim, to_simplified)
    questions = np.array([k in QUESTION_KINDS for k in built.kinds], dtype=bool)
    cosine = scale.cosine_map(embedder_id, built.vectors[questions])
    learned = ranker.train(built.vectors[questions], built.owners[questions], len(articles),
                           start=warm_start(previous, articles, dim),
                           scale=cosine[0],
                           answers=(built.vectors[~questions], built.owners[~questions]))
    if learned is not None:
        np.savez(folder / "ranker.npz", weights=learned[0], bias=learned[1], none=learned[2])
    snapshot.write_json(folder / "dictionary.json", {"terms": terms, "synonyms": synonyms})
    snapshot.publish(folder, {
        "version": snapshot.FORMAT_VERSION,
        "embedder": embedder_id,
        "dim": dim,
        "articles": len(articles),
        "passages": len(built.kinds),
        "vector_index": built.entry["vector_index"],
        "ranker": learned is not None,
        "cosine_map": list(cosine),
        "content_hash": _digest(a.content_hash for a in articles),
        "to_simplified": to_simplified,
        "segments": [built.entry],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.time() - started, 3),
    })
    return folder


def warm_start(previous: Path | None, articles: list[Article], dim: int) -> np.ndarray | None:
    """The previous snapshot's ranker columns laid out for these articles, or None when it has
    no ranker of the same shape to start from. A column is zero (a cold start from the
    article's questions) for an article it did not know or that has changed since: an edited
    article's old column still points at what it used to say, and 30 epochs do not turn it
    (a payment article rewritten about invoices kept winning payment questions)."""
    if previous is None or not (previous / "ranker.npz").exists():
        return None
    try:
        manifest = snapshot.check(previous)
        if len(segments.entries(manifest, previous)) != 1:
            return None  # a ranker always sits on a single base segment
        catalog = segments.read_json(previous / "catalog.json")
        column = {(aid, h): n for n, (aid, h) in
                  enumerate(zip(catalog["ids"], catalog["hashes"], strict=True))}
        with np.load(previous / "ranker.npz") as saved:
            old = saved["weights"]
    except (OSError, ValueError, KeyError, TypeError, CorruptIndex):
        return None  # a damaged old index only costs the cold start
    if old.shape != (dim, len(column)):
        return None
    start = np.zeros((dim, len(articles)), dtype=np.float32)
    for n, a in enumerate(articles):
        if (a.id, a.content_hash) in column:
            start[:, n] = old[:, column[(a.id, a.content_hash)]]
    return start


def rebuild_reason(manifest: dict, embedder_id: str, to_simplified: bool) -> str | None:
    """Why the live index cannot take changes as they come, or None."""
    if manifest.get("version") != snapshot.FORMAT_VERSION:
        return "the live index has an older format"
    if manifest["embedder"] != embedder_id or manifest.get("to_simplified") != to_simplified:
        return "the embedder or the normalisation changed"
    if manifest["embedder"].startswith("st:") and "cosine_map" not in manifest:
        return "the index was built before cosines were mapped to one scale"
    return None


def dictionary_words(dictionary: dict) -> set[str]:
    """The words a Segmenter adds to jieba for a dictionary ({"terms", "synonyms"})."""
    words = {*dictionary["terms"], *(t for group in dictionary["synonyms"] for t in group)}
    return {w for w in words if len(w) > 1}


def update_refused(manifest: dict, catalog: segments.Catalog, changed: int) -> str | None:
    """Why these changes make a full build rather than an update segment, or None."""
    if manifest.get("ranker"):
        return "the learned ranker is trained on every article"
    if manifest["passages"] < UPDATES_FROM:
        return "the index is small enough to rebuild in seconds"
    in_updates = sum(1 for n, _ in catalog.where.values() if n > 0) + changed
    if in_updates > MERGE_AT * max(len(catalog), 1):
        return "updates hold over a tenth of the articles: they are merged into a new base"
    return None


def update_snapshot(
    live: Path,
    manifest: dict,
    catalog: segments.Catalog,
    changed: list[Article],
    removed: set[str],
    dictionary: dict,
    embed: EmbedFn,
    index_dir: Path,
) -> Path:
    """The live snapshot's segments plus one segment with the changed articles; their older
    versions and the removed articles are marked deleted where they were.

    When the dictionary changed, the caller passes as changed the articles with a passage that
    holds an added or removed word: jieba cuts only those differently. (Strictly, a new word
    also moves jieba's total frequency a hair, which could tip a near tie elsewhere; the next
    full build settles that.)"""
    started = time.time()
    listed = [dict(e, deleted=list(e["deleted"])) for e in manifest["segments"]]
    replaced = {a.id for a in changed} | removed
    for aid in replaced & catalog.keys():
        n, i = catalog.where[aid]
        listed[n]["deleted"].append(i)
    incoming = list(changed)
    folded = len(listed) > MAX_UPDATES
    if folded:  # the update segments' live articles move into the new one
        for e in listed[1:]:
            records = segments.read_json(live / f"{e['prefix']}articles.json")
            gone = set(e["deleted"])
            incoming += [article_from_record(r) for i, r in enumerate(records) if i not in gone]
        listed = listed[:1]
    kept = [listed[0]] + [e for e in listed[1:] if len(e["deleted"]) < e["articles"]]

    folder = snapshot.new_folder(index_dir)
    snapshot.link(live, folder, [e["prefix"] + name for e in kept for name in segments.FILES
                                 if name not in segments.OPTIONAL
                                 or (live / (e["prefix"] + name)).exists()])
    snapshot.write_json(folder / "dictionary.json", dictionary)
    added = 0
    if incoming:
        built = write_segment(
            folder, f"u-{uuid.uuid4().hex[:12]}.", sorted(incoming, key=lambda a: a.id),
            Segmenter(dictionary["terms"], dictionary["synonyms"]), embed, manifest["dim"],
            manifest["to_simplified"], avgdl=listed[0].get("avgdl"),
        )
        kept.append(built.entry)
        added = built.entry["passages"]
    stay = [aid for aid, (n, _) in catalog.where.items()
            if (n == 0 or not folded) and aid not in replaced]
    hashes = {aid: catalog.hashes[aid] for aid in stay}
    hashes.update((a.id, a.content_hash) for a in incoming)
    snapshot.publish(folder, {
        **{k: v for k, v in manifest.items() if k not in ("segments", "built_at")},
        "articles": len(hashes),
        "passages": sum(catalog.passages[aid] for aid in stay) + added,
        "content_hash": _digest(hashes[aid] for aid in sorted(hashes)),
        "segments": kept,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.time() - started, 3),
    })
    return folder


def _digest(hashes: Iterable[str]) -> str:
    return hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]
