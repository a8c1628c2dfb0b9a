"""What `kb tune` gains: the whole system measured with the stock e5 model and with a copy tuned
on the folder's own texts (indexer/finetune.py), on the cold folder and its curated case.

    python -m bench.finetune ../shared/bench/unionpay-dev ../shared/bench/jiningbank [--epochs 2]

Needs torch (the `st` extra). Prints one table: hybrid R@1, MRR@10 and `confident`, and the
dense part alone, per case and model.
"""

import argparse
import dataclasses
import tempfile
from pathlib import Path

from bench.quality import curated
from indexer.embedders import E5Embedder
from indexer.finetune import EPOCHS, MAX_PAIRS, tune
from indexer.modelfile import ModelFile, stock_path
from kb.evaluate import evaluate
from kb.faqbench import faq_articles, faq_queries, write_content
from kb.knowledge_base import KnowledgeBase


def measure(name, articles, queries, tmp: Path, embedder) -> list[tuple]:
    content = tmp / name / "content"
    write_content(articles, content)
    kb = KnowledgeBase(content, tmp / name / "data", embedder)
    kb.reindex()
    searcher = kb.searcher()
    hybrid = searcher.params
    rows = []
    for label, params in (("hybrid", hybrid),
                          ("dense only", dataclasses.replace(hybrid, weights={"dense": 1.0}))):
        searcher.params = params
        rows.append((name, label, evaluate(lambda q: searcher.search(q, 10), queries)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--max-pairs", type=int, default=MAX_PAIRS)
    args = parser.parse_args(argv)
    stock = ModelFile(stock_path())
    lines = ["| data | model | hybrid R@1 | MRR@10 | confident share / precision | "
             "dense only R@1 | MRR@10 |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="kb-finetune-") as tmp:
        tmp = Path(tmp)
        for folder in args.folders:
            articles = faq_articles(folder / "kb.jsonl")
            queries = faq_queries(folder / "queries.jsonl")
            for case, (arts, asked) in ((folder.name, (articles, queries)),
                                        (f"{folder.name} curated", curated(articles, queries))):
                print(f"  {case}: tuning", flush=True)
                tuned = tune(stock, arts, args.epochs, args.max_pairs)
                print(f"    {tuned.pairs} pairs, loss {tuned.loss:.3f}, {tuned.seconds:.0f} s",
                      flush=True)
                tuned_file = tuned.model.save(tmp / f"{case.replace(' ', '-')}.bin")
                for label, embedder in (("stock", "e5"),
                                        ("tuned", E5Embedder(model_path=tuned_file))):
                    hybrid, dense = (r for _, _, r in measure(
                        f"{case}-{label}".replace(" ", "-"), arts, asked, tmp, embedder))
                    lines.append(
                        f"| {case} | {label} | {hybrid.recall_at_1:.3f} | {hybrid.mrr_at_10:.3f} | "
                        f"{hybrid.confident_share:.3f} / {hybrid.confident_precision:.3f} | "
                        f"{dense.recall_at_1:.3f} | {dense.mrr_at_10:.3f} |")
                    print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
