"""Editing articles without a text editor: a draft is checked as its file will read back,
written to content/ atomically, and indexed before the call returns. A version is the file's
content hash, so two editors cannot overwrite each other unknowingly.

content/ stays the source of truth: an edit is an ordinary Markdown file that git can diff, and
the index is rebuilt from the files, never the other way round."""

import datetime as dt
import json
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Container, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import NamedTuple

from indexer.build import article_from_record
from indexer.passages import plain_text
from indexer.snapshot import fsync_dir
from kb.article import BASIS_HEADING, Article, content_hash, dump_article, parse_article
from kb.errors import (
    ArticleError,
    ArticleExists,
    BadQuery,
    FieldProblem,
    InvalidArticle,
    NotFound,
    StaleVersion,
    VersionRequired,
)
from kb.knowledge_base import IndexReport, KnowledgeBase
from kb.lint import SPOKEN_LIMIT, clashes
from kb.locks import file_lock
from kb.regressions import SavedCheck, SavedTests

EDITOR_FOLDER = "editor"  # new articles of a category no folder holds yet
EVAL_FILE = Path("_eval") / "saved.jsonl"
EDITABLE = [f.name for f in fields(Article) if f.name not in ("path", "content_hash")]
KIND_NAMES = {"title": "title", "similar": "a similar question"}


@dataclass
class Saved:
    article: Article  # as its file reads back
    etag: str  # the file's content hash: the version to send back as If-Match
    path: str
    warnings: list[str] = field(default_factory=list)
    report: IndexReport | None = None  # None when the file did not change
    seconds: float = 0.0  # from the lock to the new snapshot being loaded
    saved_tests: SavedCheck | None = None  # the saved hit tests on the new index; None: none


def draft(**values) -> Article:
    """An Article from an editor's form: text stripped, empty list entries dropped."""
    values = dict(values)
    for key in ("id", "title", "category", "answer", "basis"):
        values[key] = (values.get(key) or "").strip()
    for key in ("tags", "similar", "related"):
        values[key] = tuple(s.strip() for s in values.get(key) or () if s and s.strip())
    return Article(**values)


def field_at(text: str, line: int | None) -> str:
    """The field an ArticleError's line points into, in a file dump_article wrote."""
    lines = text.splitlines()
    closing = next((i for i, x in enumerate(lines[1:], start=1) if x.strip() == "---"), len(lines))
    if line is None or line > closing + 1:
        return "answer"
    for i in range(min(line, closing) - 1, 0, -1):
        key = re.match(r"^([a-z_]+):", lines[i])
        if key:
            return key.group(1)
    return "id"


def read_back(article: Article) -> tuple[Article, str]:
    """(the article as its file reads back, the file text): parse_article's rules. Raises
    InvalidArticle naming each field at fault."""
    text = dump_article(article)
    try:
        saved = parse_article(text, article.path)
    except ArticleError as exc:
        raise InvalidArticle([FieldProblem(field_at(text, exc.line), exc.problem, exc.code,
                                           exc.params)]) from None
    problems = [_not_kept(name, article) for name in EDITABLE
                if getattr(saved, name) != getattr(article, name)]
    if any(p.field == "answer" for p in problems):  # the basis moved with the answer
        problems = [p for p in problems if p.field != "basis"]
    if problems:
        raise InvalidArticle(problems)
    return saved, text


def conflicts(saved: Article, owner: dict, known: Container[str],
              today: dt.date) -> list[FieldProblem]:
    """Lint's rules: a question another article asks (`owner`: lint.question_owners, or
    LiveQuestions), a related id not in `known`, an end date already past."""
    problems = [FieldProblem(kind, (
        f"'{question}' is already {KIND_NAMES[other_kind]} of '{other.id}' ({other.title}): "
        "one question must lead to one article; remove it here or there"), "question_taken",
        {"question": question, "other": other.id, "other_title": other.title,
         "other_kind": other_kind})
        for kind, question, other, other_kind in clashes(saved, owner)]
    problems += [FieldProblem("related", f"'{r}' is not an article", "unknown_related",
                              {"id": r})
                 for r in saved.related if r not in known and r != saved.id]
    if saved.effective_to and saved.effective_to < today:
        problems.append(FieldProblem("effective_to", (
            f"{saved.effective_to} is past, so the article would be expired at once: "
            "choose a later date, or delete the article"), "expired",
            {"date": saved.effective_to.isoformat()}))
    return problems


def warnings_for(saved: Article) -> list[str]:
    spoken = len(plain_text(saved.answer))
    if spoken > SPOKEN_LIMIT:
        # In Chinese, as the editor page shows it to content editors (`kb lint` says it in
        # English, as every command-line message).
        return [f"答案有 {spoken} 字，坐席读给客户的部分请控制在 {SPOKEN_LIMIT} 字以内"]
    return []


def _not_kept(name: str, article: Article) -> FieldProblem:
    if name == "answer" and BASIS_HEADING.search(article.answer):
        return FieldProblem(name, "a line '## 依据' in the answer would start the basis: put "
                                  "the rule in 'basis'", "basis_in_answer")
    return FieldProblem(name, f"'{name}' would not read back as written: remove unusual "
                              "characters or line breaks", "not_kept", {"field": name})


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that a reader, or a crash, sees the old text or the new, never half.
    The temporary name starts with '.', so neither the index nor the watcher takes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)




def folder_for(category: str, records: Iterable[dict], content_dir: Path,
               default: str = EDITOR_FOLDER) -> str:
    """The folder (relative to content_dir) that holds most articles of `category`."""
    root = Path(content_dir).resolve()
    counts: Counter[str] = Counter()
    for r in records:
        if r["category"] == category and r.get("path"):
            try:
                rel = Path(r["path"]).resolve().parent.relative_to(root)
            except ValueError:
                continue
            if not any(part.startswith(("_", ".")) for part in rel.parts):
                counts[rel.as_posix()] += 1
    return counts.most_common(1)[0][0] if counts else default


def check_version(article_id: str, if_match: str | None, current: str) -> None:
    """Raise unless If-Match names the current version (or is '*')."""
    if if_match is None:
        raise VersionRequired(
            f"send the version you edited as If-Match: GET /api/articles/{article_id} gives it "
            "as ETag")
    sent = [t.strip().removeprefix("W/").strip('"') for t in if_match.split(",")]
    if "*" in sent or current in sent:
        return
    raise StaleVersion(
        f"article '{article_id}' changed since you loaded it: you edited version {sent[0] or '?'}, "
        f"the current version is {current}. Reload it, apply your change again and save", current)


def _query_of(line: str) -> str | None:
    """The query of an eval-set line; None for a line someone broke (it is kept as it is)."""
    try:
        return json.loads(line).get("query")
    except (ValueError, AttributeError):
        return None


class Owner(NamedTuple):
    id: str
    title: str


class LiveQuestions:
    """lint.question_owners' answer for one article's questions, from the live index's hashed
    question keys (Searcher.question_owner) rather than a dict of every question: at 50,000
    articles that dict took 4.9 s to build for each save, as each save makes a new snapshot."""

    def __init__(self, searcher, article_id: str):
        self.searcher, self.article_id = searcher, article_id

    def get(self, key: str) -> tuple[Owner, str] | None:
        found = self.searcher.question_owner(key, other_than=self.article_id)
        return (Owner(found[0]["id"], found[0]["title"]), found[1]) if found else None


class Editor:
    """Writes for the editor endpoints, one at a time, also across worker processes."""

    def __init__(self, kb: KnowledgeBase, today: Callable[[], dt.date] = dt.date.today):
        self.kb = kb
        self.today = today
        self._lock = threading.Lock()
        self.saved_tests = SavedTests(kb.content_dir / EVAL_FILE)

    def version(self, article_id: str) -> tuple[Path, str]:
        """The article's file and its version as it is on disk now."""
        path = self.kb.article_file(article_id)
        try:
            return path, content_hash(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(f"no article '{article_id}': its file is gone") from None

    def create(self, article: Article) -> Saved:
        with self._writing() as started:
            if article.id in self.kb.searcher().by_id:
                raise ArticleExists(
                    f"article '{article.id}' exists already: edit it, or choose another id")
            files = self.kb.article_files()
            records = ({"category": a["category"], "path": files.get(a["id"], a["path"])}
                       for a in self.kb.articles())
            folder = folder_for(article.category, records, self.kb.content_dir)
            path = self.kb.content_dir / folder / f"{article.id}.md"
            if path.exists():
                raise ArticleExists(f"{path} exists but is not indexed: `kb lint` says why")
            return self._write(replace(article, path=str(path)), path, None, started)

    def update(self, article_id: str, article: Article, if_match: str | None) -> Saved:
        if article.id != article_id:
            raise InvalidArticle([FieldProblem("id", (
                f"the id cannot change ('{article_id}' to '{article.id}'): create a new "
                "article and delete this one"), "id_changed",
                {"old": article_id, "new": article.id})])
        with self._writing() as started:
            path, current = self.version(article_id)
            check_version(article_id, if_match, current)
            return self._write(replace(article, path=str(path)), path, current, started)

    def delete(self, article_id: str, if_match: str | None) -> Saved:
        with self._writing() as started:
            path, current = self.version(article_id)
            check_version(article_id, if_match, current)
            article = article_from_record(self.kb.get(article_id))
            path.unlink()
            fsync_dir(path.parent)
            report = self._publish()
            linking = [r["id"] for r in self.kb.articles() if article_id in r.get("related", [])]
            warnings = [f"文章 {i} 的“相关文章”里还列着它，请一并修改那篇文章"
                        for i in linking]
            return Saved(article, "", str(path), warnings, report,
                         time.perf_counter() - started, self._check_saved())

    def save_eval_query(self, query: str, expected: list[str]) -> tuple[Path, int]:
        """Add a labelled query to content/_eval/saved.jsonl (replacing one with the same
        text), for `kb eval` to run again. Returns the file and its number of queries."""
        query = query.strip()
        if not query:
            raise BadQuery("the query is empty: type the question to save")
        if not expected:
            raise BadQuery("name the article the query should find")
        for article_id in expected:
            self.kb.get(article_id)  # NotFound names an unknown one
        path = self.kb.content_dir / EVAL_FILE
        with self._locked():
            lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
            lines = [x for x in lines if x.strip() and _query_of(x) != query]
            lines.append(json.dumps({"query": query, "expected": list(expected)},
                                    ensure_ascii=False))
            write_atomic(path, "".join(x + "\n" for x in lines))
        return path, len(lines)

    def _write(self, article: Article, path: Path, current: str | None, started) -> Saved:
        saved, text = read_back(article)
        searcher = self.kb.searcher()
        problems = conflicts(saved, LiveQuestions(searcher, saved.id), searcher.by_id,
                             self.today())
        if problems:
            raise InvalidArticle(problems)
        etag = content_hash(text)
        if etag == current:  # nothing changed: no write, no build
            return Saved(saved, etag, str(path), warnings_for(saved))
        write_atomic(path, text)
        report = self._publish()
        return Saved(saved, etag, str(path), warnings_for(saved), report,
                     time.perf_counter() - started, self._check_saved())

    def _check_saved(self) -> SavedCheck | None:
        """The saved hit tests on the index just published. Still under the lock: the result
        belongs to this write's snapshot, and the kept vectors are never shared."""
        return self.saved_tests.check(self.kb.searcher())

    def _publish(self) -> IndexReport:
        report = self.kb.reindex()
        self.kb.searcher()  # load the new snapshot now rather than on the next search
        return report

    @contextmanager
    def _locked(self):
        with self._lock, file_lock(self.kb.data_dir / "edit.lock"):
            yield

    @contextmanager
    def _writing(self):
        """The lock, with the index first brought up to date with content/, so versions and
        the checks against other articles see what is on disk."""
        with self._locked():
            started = time.perf_counter()
            self.kb.reindex()
            yield started
