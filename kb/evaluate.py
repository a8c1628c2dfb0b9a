"""Retrieval evaluation: R@k, MRR@10, per category, the misses, and query time."""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb.errors import KBError


@dataclass
class EvalReport:
    queries: int = 0
    recall_at_1: float = 0.0
    recall_at_3: float = 0.0
    recall_at_10: float = 0.0
    mrr_at_10: float = 0.0
    query_ms_p50: float = 0.0
    confident_share: float = 0.0
    confident_precision: float = 0.0
    by_category: dict = field(default_factory=dict)
    by_set: dict = field(default_factory=dict)  # when the queries came from several files
    misses: list = field(default_factory=list)

    def summary(self) -> dict:
        keys = ("queries", "recall_at_1", "recall_at_3", "recall_at_10", "mrr_at_10",
                "query_ms_p50", "confident_share", "confident_precision")
        return {k: getattr(self, k) for k in keys}


EVAL_FOLDER = "_eval"


def eval_sets(content_dir: Path) -> list[Path]:
    """Every eval set of a content folder: content/_eval/*.jsonl, the labelled queries
    (queries.jsonl) and the hit tests editors saved (saved.jsonl), in name order."""
    return sorted((Path(content_dir) / EVAL_FOLDER).glob("*.jsonl"))


def read_queries(path: Path, skip_bad: bool = False) -> list[dict]:
    """{"query": ..., "expected": [ids]} per line; a bad line names its number, or with
    skip_bad is left out."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            expected = row["expected"]
            if isinstance(expected, str):
                expected = [expected]
            rows.append({"query": str(row["query"]), "expected": [str(e) for e in expected]})
        except (ValueError, KeyError, TypeError) as exc:
            if skip_bad:
                continue
            shape = '{"query": ..., "expected": [ids]}'
            raise KBError(f"{path}:{n}: expected {shape} ({exc})") from None
    return rows


def evaluate(search, queries: list[dict], category_of=None) -> EvalReport:
    """search(query) -> ranked hits with .id and .confident; category_of(id) -> category.
    Queries with a "set" key (the file they came from) are also reported per set."""
    ranks, times, confident, by_cat, by_set, misses = [], [], [], {}, {}, []
    for row in queries:
        started = time.perf_counter()
        hits = search(row["query"])
        times.append((time.perf_counter() - started) * 1000)
        ids = [h.id for h in hits[:10]]
        rank = next((i + 1 for i, h in enumerate(ids) if h in row["expected"]), None)
        ranks.append(rank)
        if hits and hits[0].confident:
            confident.append(rank == 1)
        if rank != 1:
            misses.append({"query": row["query"], "expected": row["expected"], "got": ids[:3],
                           "rank": rank})
        if category_of:
            cat = category_of(row["expected"][0]) or "?"
            by_cat.setdefault(cat, []).append(rank)
        if "set" in row:
            by_set.setdefault(row["set"], []).append(rank)
    report = _metrics(ranks)
    report.query_ms_p50 = round(float(np.median(times)), 2) if times else 0.0
    report.confident_share = round(len(confident) / len(ranks), 3) if ranks else 0.0
    report.confident_precision = round(sum(confident) / len(confident), 3) if confident else 0.0
    report.by_category = {c: _metrics(r).summary() for c, r in sorted(by_cat.items())}
    report.by_set = {name: _metrics(r).summary() for name, r in by_set.items()}
    report.misses = misses
    return report


def _metrics(ranks: list) -> EvalReport:
    n = len(ranks) or 1

    def at(k):
        return round(sum(1 for r in ranks if r and r <= k) / n, 3)

    mrr = round(sum(1 / r for r in ranks if r and r <= 10) / n, 3)
    return EvalReport(queries=len(ranks), recall_at_1=at(1), recall_at_3=at(3),
                      recall_at_10=at(10), mrr_at_10=mrr)
