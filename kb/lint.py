"""Content checks that `kb lint` runs: what would confuse search or an agent reading aloud."""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from indexer.normalize import normalize, strip_fillers
from indexer.passages import plain_text
from kb.article import Article, load_folder

SPOKEN_LIMIT = 300  # characters; about a minute read aloud


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


def _key(text: str) -> str:
    return strip_fillers(normalize(text)).rstrip("?？。!！ ")


def lint_articles(articles: list[Article], today: dt.date) -> list[Problem]:
    problems = []
    ids = {a.id for a in articles}
    owner: dict[str, tuple[Article, str]] = {}
    for a in articles:
        for kind, question in [("title", a.title)] + [("similar", s) for s in a.similar]:
            key = _key(question)
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
