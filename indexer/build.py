"""Build a snapshot folder from articles: passages, both lexical fields, vectors, manifest."""

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from indexer import snapshot
from indexer.lexical import BM25
from indexer.normalize import normalize, strip_fillers
from indexer.passages import QUESTION_KINDS, article_passages
from indexer.segment import Segmenter, char_grams
from indexer.vector import VectorIndex
from kb.article import Article
from kb.render import render_html

# embed(texts, kind) -> vectors; the caller puts a cache in front of the model.
EmbedFn = Callable[[list[str], str], np.ndarray]


def passage_text(kind: str, text: str, to_simplified: bool = True) -> str:
    """The text a passage is matched by: normalised, and for questions without fillers, as a
    query is, so a similar question and the same words typed by an agent meet."""
    text = normalize(text, to_simplified)
    return strip_fillers(text) if kind in QUESTION_KINDS else text


def embed_kind(kind: str) -> str:
    # Questions are matched question-to-question, so they take the query side of e5.
    return "query" if kind in QUESTION_KINDS else "passage"


def dictionary_terms(articles: list[Article], userdict: list[str]) -> list[str]:
    """The domain dictionary: userdict.txt plus tags and short titles of the articles."""
    terms = list(userdict)
    for a in articles:
        terms.extend(a.tags)
    return sorted({t for t in terms if 1 < len(t) <= 12})


def article_record(a: Article) -> dict:
    record = asdict(a)
    record["effective"] = a.effective.isoformat() if a.effective else None
    record["effective_to"] = a.effective_to.isoformat() if a.effective_to else None
    record["answer_html"] = render_html(a.answer)
    record["basis_html"] = render_html(a.basis) if a.basis else ""
    return record


def build_snapshot(
    articles: list[Article],
    userdict: list[str],
    synonyms: list[list[str]],
    embed: EmbedFn,
    embedder_id: str,
    dim: int,
    index_dir: Path,
    to_simplified: bool = True,
) -> Path:
    started = time.time()
    articles = sorted(articles, key=lambda a: a.id)
    terms = dictionary_terms(articles, userdict)
    seg = Segmenter(terms, synonyms)

    owners, kinds, texts, matched = [], [], [], []
    for i, a in enumerate(articles):
        for kind, text in article_passages(a):
            owners.append(i)
            kinds.append(kind)
            texts.append(text)
            matched.append(passage_text(kind, text, to_simplified))

    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    for kind in ("query", "passage"):
        rows = [i for i, k in enumerate(kinds) if embed_kind(k) == kind]
        if rows:
            vectors[rows] = embed([matched[i] for i in rows], kind)

    folder = snapshot.new_folder(index_dir)
    BM25.build([seg.words(t) for t in matched]).save(folder / "words")
    BM25.build([char_grams(t) for t in matched]).save(folder / "chars")
    dense = VectorIndex.build(vectors, dim)
    dense.save(folder / "dense.faiss")
    snapshot.write_json(folder / "articles.json", [article_record(a) for a in articles])
    snapshot.write_json(folder / "passages.json", {"owner": owners, "kind": kinds, "text": texts})
    snapshot.write_json(folder / "dictionary.json", {"terms": terms, "synonyms": synonyms})
    digest = hashlib.sha256("".join(a.content_hash for a in articles).encode()).hexdigest()[:16]
    snapshot.publish(folder, {
        "version": snapshot.FORMAT_VERSION,
        "embedder": embedder_id,
        "dim": dim,
        "articles": len(articles),
        "passages": len(texts),
        "vector_index": dense.kind,
        "content_hash": digest,
        "to_simplified": to_simplified,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.time() - started, 3),
    })
    return folder
