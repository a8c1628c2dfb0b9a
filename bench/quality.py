"""Retrieval quality on FAQ folders shaped like ../shared/bench/* (kb.jsonl + queries.jsonl).

Runs, on the same data and in one run: this system's hybrid, its lexical-only and dense-only
parts, BM25 over jieba words (bm25s), BM25 over character 1+2-grams (bm25s) and SQLite FTS5
with the trigram tokenizer. For each folder also the curated case: up to five of each article's
queries become its similar questions and the rest are asked. Prints a table and writes it to
docs/benchmarks.md.

    python -m bench.quality ../shared/bench/unionpay-dev ../shared/bench/jiningbank
"""

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import baselines
from kb.article import Article
from kb.evaluate import evaluate
from kb.faqbench import faq_articles, faq_queries, write_content
from kb.knowledge_base import KnowledgeBase

CURATED_SIMILAR = 5


def curated(articles: list[Article], queries: list[dict]):
    """Move up to five queries of each article into its similar list; ask the rest."""
    taken: dict[str, list[str]] = {}
    rest = []
    for q in queries:
        owner = q["expected"][0]
        if len(taken.setdefault(owner, [])) < CURATED_SIMILAR and q["query"] not in taken[owner]:
            taken[owner].append(q["query"])
        else:
            rest.append(q)
    moved = [dataclasses.replace(a, similar=tuple(dict.fromkeys(
        [*a.similar, *(s for s in taken.get(a.id, []) if s != a.title)]))) for a in articles]
    return moved, rest


class Timed:
    """Adapts a `search(query) -> ids` function to what evaluate() expects."""

    def __init__(self, search):
        self.search = search

    def __call__(self, query):
        return [_Hit(i) for i in self.search(query)]


@dataclasses.dataclass(frozen=True)
class _Hit:
    id: str
    confident: bool = False


def run_case(name: str, articles, queries, tmp: Path, embedder: str = "e5") -> list[tuple]:
    content = tmp / name / "content"
    write_content(articles, content)
    kb = KnowledgeBase(content, tmp / name / "data", embedder)
    started = time.perf_counter()
    kb.reindex()
    print(f"  {name}: indexed {len(articles)} articles in {time.perf_counter() - started:.1f}s")
    searcher = kb.searcher()
    hybrid = searcher.params
    modes = {
        "hybrid (this system)": hybrid,
        "lexical only (this system)": dataclasses.replace(
            hybrid, weights={"chars": 0.5, "words": 0.5}),
        "dense only (this system)": dataclasses.replace(
            hybrid, weights={"dense": 1.0}),
    }
    rows = []
    for label, params in modes.items():
        searcher.params = params
        searcher._embed_query.cache_clear()  # each mode pays for its own query embeddings
        report = evaluate(lambda q: searcher.search(q, 10), queries)
        rows.append((name, label, report))
    searcher.params = hybrid
    for label, make in (("BM25 jieba words (bm25s)", baselines.bm25_words),
                        ("BM25 char 1+2-grams (bm25s)", baselines.bm25_chars),
                        ("SQLite FTS5 trigram", baselines.Fts5Trigram)):
        method = make(articles)
        rows.append((name, label, evaluate(Timed(method.search), queries)))
    return rows


def table(rows) -> str:
    lines = ["| data | method | R@1 | R@3 | R@10 | MRR@10 | p50 ms | confident share | "
             "confident precision |", "|---|---|---|---|---|---|---|---|---|"]
    for name, label, r in rows:
        conf = (f"{r.confident_share:.3f} | {r.confident_precision:.3f}"
                if "hybrid" in label else "– | –")
        lines.append(f"| {name} | {label} | {r.recall_at_1:.3f} | {r.recall_at_3:.3f} | "
                     f"{r.recall_at_10:.3f} | {r.mrr_at_10:.3f} | {r.query_ms_p50:.2f} | {conf} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--embedder", default="e5",
                        help="as KB_EMBEDDER: 'e5' (default) or 'st:<model directory>'")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kb-quality-") as tmp:
        for folder in args.folders:
            articles = faq_articles(folder / "kb.jsonl")
            queries = faq_queries(folder / "queries.jsonl")
            rows += run_case(folder.name, articles, queries, Path(tmp), args.embedder)
            moved, rest = curated(articles, queries)
            rows += run_case(f"{folder.name} curated", moved, rest, Path(tmp), args.embedder)
    text = table(rows)
    print(text)
    emb = np.median([r.query_ms_p50 for n, lbl, r in rows if lbl.startswith("dense only")])
    write_doc(args.out, text, emb)


def write_doc(path: Path, text: str, embed_ms: float) -> None:
    header = path.read_text(encoding="utf-8").split("<!-- table -->")[0] if path.exists() else (
        "# Retrieval benchmarks\n\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"{header}<!-- table -->\n{text}\n\nDense-only p50 (mostly the query embedding): "
        f"{embed_ms:.2f} ms. Produced by `python -m bench.quality` on "
        f"{time.strftime('%Y-%m-%d')}.\n", encoding="utf-8")


if __name__ == "__main__":
    main()
