"""Saved hit tests, run again after every edit.

Editors save hit-test queries with the article each should find (content/_eval/saved.jsonl).
After a write, the editor is told which of them no longer rank that article first, so an edit
that breaks one is seen at the save, not at the next `kb eval`.

Kept cheap: at most LIMIT queries are checked (the most recently saved; the rest are counted
as skipped), and each query's vector is kept from one check to the next, since the model does
not change when the index does. New queries (all of them at the first write after a start) are
embedded in batches; after that a check runs only lexical scoring and fusion again, under a
millisecond a query on the test content."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.batching import MAX_BATCH as BATCH
from indexer.search import Searcher
from kb.errors import BadQuery
from kb.evaluate import read_queries

LIMIT = 200
DEPTH = 10  # how far down the expected article's rank is looked for


@dataclass(frozen=True)
class Broken:
    """A saved query whose expected article is not ranked first."""

    query: str
    expected: list[str]
    got: str | None  # the article ranked first instead; None: no result
    rank: int | None  # the expected article's rank; None: not in the first DEPTH


@dataclass
class SavedCheck:
    checked: int
    skipped: int  # saved queries beyond LIMIT, not checked
    broken: list[Broken] = field(default_factory=list)


class SavedTests:
    """The saved hit tests of one eval file, with their query vectors kept between checks."""

    def __init__(self, path: Path, limit: int = LIMIT):
        self.path = Path(path)
        self.limit = limit
        self._vectors: dict[str, np.ndarray] = {}

    def check(self, searcher: Searcher) -> SavedCheck | None:
        """Run the saved queries on `searcher`; None when none are saved. A line someone broke
        is left out: `kb eval` reports it, and it must not fail an editor's save."""
        rows = read_queries(self.path, skip_bad=True) if self.path.exists() else []
        if not rows:
            return None
        recent = rows[-self.limit :]
        result = SavedCheck(checked=len(recent), skipped=len(rows) - len(recent))
        queries = []
        for row in recent:
            try:
                queries.append(searcher.prepare(row["query"]))
            except BadQuery:  # nothing to search for: it cannot find its article either
                queries.append(None)
        self._embed([q.text for q in queries if q], searcher)
        for row, query in zip(recent, queries):
            ids = [h.id for h in searcher.search_query(
                query, DEPTH, vector=self._vectors[query.text])] if query else []
            if not ids or ids[0] not in row["expected"]:
                rank = next((n for n, i in enumerate(ids, 1) if i in row["expected"]), None)
                result.broken.append(Broken(row["query"], row["expected"],
                                            ids[0] if ids else None, rank))
        # Only the vectors of the queries saved now are kept: the cache never outgrows LIMIT.
        self._vectors = {q.text: self._vectors[q.text] for q in queries if q}
        return result

    def _embed(self, texts: list[str], searcher: Searcher) -> None:
        """Vectors for the texts not seen before, by the searcher's model, in batches as
        concurrent searches are embedded (indexer/batching.py)."""
        new = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        for start in range(0, len(new), BATCH):
            chunk = new[start : start + BATCH]
            self._vectors.update(zip(chunk, searcher.embedder.encode(chunk, "query")))
