"""Saved hit tests, run again after every edit.

Editors save hit-test queries with the article each should find (content/_eval/saved.jsonl).
After a write, the editor is told which of them no longer rank that article first, so an edit
that breaks one is seen at the save, not at the next `kb eval`.

Kept cheap: at most LIMIT queries are checked (the most recently saved; the rest are counted
as skipped), and each query's vector is kept from one check to the next, since the model does
not change when the index does. After the first check only lexical scoring and fusion run
again, about a millisecond a query."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
        vectors = {}
        for row in recent:
            try:
                query = searcher.prepare(row["query"])
            except BadQuery:  # nothing to search for: it cannot find its article either
                result.broken.append(Broken(row["query"], row["expected"], None, None))
                continue
            vector = self._vectors.get(query.text)
            if vector is None:  # as Searcher embeds a query, so the ranks are the agents'
                vector = searcher.embedder.encode([query.text], "query")[0]
            vectors[query.text] = vector
            ids = [h.id for h in searcher.search_query(query, DEPTH, vector=vector)]
            if not ids or ids[0] not in row["expected"]:
                rank = next((n for n, i in enumerate(ids, 1) if i in row["expected"]), None)
                result.broken.append(Broken(row["query"], row["expected"],
                                            ids[0] if ids else None, rank))
        self._vectors = vectors  # only the queries saved now: the cache never outgrows LIMIT
        return result
