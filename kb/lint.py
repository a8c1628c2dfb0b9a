"""Content checks that `kb lint` runs: what would confuse search or an agent reading aloud."""

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.normalize import question_key
from indexer.passages import plain_text
from kb.article import Article, load_folder

SPOKEN_LIMIT = 300  # characters; about a minute read aloud
# Cosine of two questions' e5 vectors from which `kb lint --deep` takes them to ask the same
# thing. e5 packs related questions close: on content/, 0.95 flags 77 pairs, mostly related but
# distinct ("上家欠的电费算谁的" / "钱扣了电费还欠着"); 0.97 flags 6, each worth a look.
NEAR_DUPLICATE = 0.97


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    message: str
    severity: str = "error"  # error fails lint; warning is shown only

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.severity}: {self.message}"


def lint_folder(content_dir: Path, today: dt.date | None = None) -> list[Problem]:
    articles, errors = load_folder(content_dir)
    problems = [Problem(e.path, e.line, e.problem) for e in errors]
    return problems + lint_articles(articles, today or dt.date.today())


def questions_of(a: Article) -> list[tuple[str, str]]:
    """(kind, question) pairs: the title, then each similar question."""
    return [("title", a.title)] + [("similar", s) for s in a.similar]


def question_owners(articles: Iterable[Article]) -> dict[str, tuple[Article, str]]:
    """The article (and kind) that asks each question first, by question_key."""
    owner: dict[str, tuple[Article, str]] = {}
    for a in articles:
        for kind, question in questions_of(a):
            owner.setdefault(question_key(question), (a, kind))
    return owner


def clashes(article: Article, owner: dict[str, tuple[Article, str]]) -> list[tuple]:
    """(kind, question, other article, its kind) for every question of `article` that another
    article in `owner` (question_owners) asks already."""
    found = []
    for kind, question in questions_of(article):
        other = owner.get(question_key(question))
        if other and other[0].id != article.id:
            found.append((kind, question, *other))
    return found


def lint_articles(articles: list[Article], today: dt.date) -> list[Problem]:
    problems = []
    ids = {a.id for a in articles}
    owner: dict[str, tuple[Article, str]] = {}
    for a in articles:
        for kind, question in questions_of(a):
            key = question_key(question)
            if key in owner and owner[key][0].id != a.id:
                other, other_kind = owner[key]
                problems.append(Problem(a.path, None, (
                    f"{kind} '{question}' is also the {other_kind} of '{other.id}' ({other.path}): "
                    "one question must lead to one article; remove it from one of them")))
            else:
                owner.setdefault(key, (a, kind))
        for rel in a.related:
            if rel not in ids:
                problems.append(Problem(a.path, None, f"related id '{rel}' is not an article"))
        if a.effective_to and a.effective_to < today:
            problems.append(Problem(a.path, None,
                                    f"expired on {a.effective_to}: update it or remove it"))
        spoken = len(plain_text(a.answer))
        if spoken > SPOKEN_LIMIT:
            problems.append(Problem(a.path, None, (
                f"the answer is {spoken} characters; keep what the agent reads out under "
                f"{SPOKEN_LIMIT}"), "warning"))
    return problems


def near_duplicates(articles: list[Article], embed: Callable[[list[str]], np.ndarray],
                    threshold: float = NEAR_DUPLICATE) -> list[Problem]:
    """Pairs of articles with questions whose embeddings are closer than `threshold`: "these two
    articles answer the same question". `embed` gives unit vectors, one row per question. One
    warning per pair of articles, naming its closest two questions."""
    asked = [(n, q) for n, a in enumerate(articles) for _, q in questions_of(a)]
    if not asked:
        return []
    owner = np.array([n for n, _ in asked])
    vectors = np.asarray(embed([q for _, q in asked]), dtype=np.float32)
    best: dict[tuple[int, int], tuple[float, int, int]] = {}
    for start in range(0, len(asked), 1024):  # blocks keep memory flat on a large KB
        sims = vectors[start : start + 1024] @ vectors.T
        sims[owner[start : start + 1024, None] >= owner[None, :]] = -1.0  # each pair once
        for i, j in zip(*np.nonzero(sims >= threshold)):
            pair, sim = (int(owner[start + i]), int(owner[j])), float(sims[i, j])
            if sim > best.get(pair, (-1.0, 0, 0))[0]:
                best[pair] = (sim, start + int(i), int(j))
    problems = []
    for (x, y), (sim, i, j) in sorted(best.items(), key=lambda kv: -kv[1][0]):
        first, second = articles[x], articles[y]
        problems.append(Problem(second.path, None, (
            f"'{asked[j][1]}' is a near duplicate of '{asked[i][1]}' of '{first.id}' "
            f"({first.path}), cosine {sim:.3f}: the two articles may answer the same question; "
            "merge them or make the questions distinct"), "warning"))
    return problems
