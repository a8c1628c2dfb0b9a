"""Articles: the Markdown-with-front-matter files editors write, parsed and validated."""

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kb.errors import ArticleError, ConfigError

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
BASIS_HEADING = re.compile(r"^##\s*依据\s*$", re.MULTILINE)
REQUIRED = ("id", "title", "category")
# Far above any script read aloud (the editor takes 50,000 characters), and far below what
# stalls a build: a 7 MB answer cut into 18,736 passages held the build lock for 20 minutes.
MAX_FILE_BYTES = 300_000
KNOWN_KEYS = {"id", "title", "category", "tags", "similar", "effective", "effective_to", "related"}


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    category: str
    answer: str  # the standard answer (Markdown), what the agent reads out
    basis: str = ""  # the rule it rests on (Markdown), the "## 依据" section
    tags: tuple[str, ...] = ()
    similar: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    effective: dt.date | None = None
    effective_to: dt.date | None = None
    path: str = ""
    content_hash: str = field(default="", compare=False)

    @property
    def questions(self) -> tuple[str, ...]:
        return (self.title, *self.similar)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value)) and len(value) <= 80


def parse_article(text: str, path: str | Path = "<text>") -> Article:
    """Parse one article file. Raises ArticleError naming the file, the line and the fix."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise ArticleError(path, 1, "front matter missing: the file must start with a line '---'",
                           "front_matter_missing")
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == "---")
    except StopIteration:
        raise ArticleError(path, 1, "front matter not closed: add a line '---' after it",
                           "front_matter_open") from None
    front_text = "\n".join(lines[1:end])
    try:
        meta = yaml.load(front_text, Loader=_FrontMatterLoader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else 2
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ArticleError(path, line, f"front matter is not valid YAML: {problem}",
                           "yaml_invalid") from None
    except TypeError:  # a list or a mapping as a key
        raise ArticleError(path, 2, "front matter is not valid: a key must be a word, e.g. "
                           "'similar:'", "yaml_invalid") from None
    except RecursionError:
        raise ArticleError(path, 2, "front matter nests lists too deeply: write plain lists",
                           "yaml_invalid") from None
    if not isinstance(meta, dict):
        raise ArticleError(path, 2, "front matter must be 'key: value' lines", "yaml_invalid")

    def line_of(key: str) -> int:
        for i, line in enumerate(lines[1:end], start=2):
            if line.startswith(f"{key}:"):
                return i
        return 2

    def fail(key: str, problem: str, code: str, **params):
        raise ArticleError(path, line_of(key), problem, code, **params)

    for key in REQUIRED:
        if not isinstance(meta.get(key), str | int) or not str(meta.get(key)).strip():
            fail(key, f"'{key}' is required and must be text", "required", field=key)
    unknown = sorted(set(meta) - KNOWN_KEYS, key=str)  # keys may be numbers, dates
    if unknown:
        fail(unknown[0], f"unknown key '{unknown[0]}' (known: {', '.join(sorted(KNOWN_KEYS))})",
             "unknown_key", name=unknown[0])
    article_id = str(meta["id"]).strip()
    if not is_valid_id(article_id):
        fail("id", f"id '{article_id}' may hold only lowercase letters, digits and '-'",
             "id_format", id=article_id)
    tags = _text_list(meta.get("tags"), "tags", fail)
    similar = _text_list(meta.get("similar"), "similar", fail)
    related = _text_list(meta.get("related"), "related", fail)
    effective = _date(meta.get("effective"), "effective", fail)
    effective_to = _date(meta.get("effective_to"), "effective_to", fail)
    if effective and effective_to and effective_to < effective:
        fail("effective_to", "effective_to is before effective", "ends_before_start")

    body = "\n".join(lines[end + 1 :]).strip()
    answer, basis = split_basis(body)
    if not answer:
        raise ArticleError(path, end + 2, "the standard answer is empty: write it below the '---'",
                           "answer_empty")
    return Article(
        id=article_id,
        title=str(meta["title"]).strip(),
        category=str(meta["category"]).strip(),
        answer=answer,
        basis=basis,
        tags=tags,
        similar=similar,
        related=related,
        effective=effective,
        effective_to=effective_to,
        path=str(path),
        content_hash=content_hash(text),
    )


def split_basis(body: str) -> tuple[str, str]:
    match = BASIS_HEADING.search(body)
    if not match:
        return body.strip(), ""
    return body[: match.start()].strip(), body[match.end() :].strip()


def _text_list(value, key, fail) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        # `tags: 停电, 报修` means two tags; a tag or an id never holds a comma. A similar
        # question may, so it stays whole.
        value = re.split(r"\s*[,，、;；]\s*", value) if key in ("tags", "related") else [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        fail(key, f"'{key}' must be a list of text, e.g. [a, b] or '- a' lines", "not_a_list",
             field=key)
    items = tuple(str(v).strip() for v in value if str(v).strip())
    if len(set(items)) != len(items):
        fail(key, f"'{key}' lists the same entry twice", "repeated_entry", field=key)
    return items


def _date(value, key, fail) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.datetime.fromisoformat(str(value).strip()).date()  # a date or a date and time
    except ValueError:
        fail(key, f"'{key}' must be a date like 2025-01-01", "not_a_date", field=key)


class _FrontMatterLoader(yaml.SafeLoader):
    """YAML as editors write front matter: a key given twice is an error at its line (the
    plain loader keeps the last one and silently drops the earlier list), and dates stay text
    for `_date` to check (the plain loader raises a bare ValueError on 2025-13-01, naming no
    file and stopping every build)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is given twice: keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


_FrontMatterLoader.add_constructor("tag:yaml.org,2002:timestamp",
                                   yaml.SafeLoader.construct_yaml_str)


class _OneLine(list):
    """A short list written on one line ([a, b]); other lists get a line an entry, as editors
    write similar questions, so that a diff shows which question changed."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_OneLine, lambda dumper, value: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", value, flow_style=True))


def dump_article(article: Article) -> str:
    """The file text for an article; parse_article(dump_article(a)) gives a back."""
    meta = {"id": article.id, "title": article.title, "category": article.category}
    if article.tags:
        meta["tags"] = _OneLine(article.tags)
    if article.similar:
        meta["similar"] = list(article.similar)
    if article.related:
        meta["related"] = _OneLine(article.related)
    if article.effective:
        meta["effective"] = article.effective
    if article.effective_to:
        meta["effective_to"] = article.effective_to
    front = yaml.dump(meta, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000,
                      default_flow_style=False)
    text = f"---\n{front}---\n{article.answer.strip()}\n"
    if article.basis.strip():
        text += f"\n## 依据\n{article.basis.strip()}\n"
    return text


def article_files(content_dir: Path) -> list[str]:
    """The article files under content_dir in a stable order: every *.md except README.md and
    whatever sits in a folder or file whose name starts with '_' or '.'."""
    return [path for path, _ in article_stats(content_dir)]


def article_stats(content_dir: Path) -> list[tuple[str, os.stat_result]]:
    """article_files with each file's stat, from one walk (the incremental index reads these
    for every file on every run)."""
    root = os.fspath(content_dir)
    found, folders = [], [root]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if folder == root:  # a mistyped or unmounted folder is no empty knowledge base
                raise ConfigError(f"the content folder {root} cannot be read ({exc.strerror}): "
                                  "check KB_CONTENT_DIR") from None
            continue
        for entry in entries:
            name = entry.name
            if name.startswith(("_", ".")):
                continue
            try:
                if entry.is_dir():
                    folders.append(entry.path)
                elif name.endswith(".md") and name != "README.md":
                    found.append((entry.path, entry.stat()))
            except OSError:
                continue  # removed while we looked
    # Sorted as Path objects sort (part by part): with the separator as the smallest character,
    # comparing the strings gives that order, without 50,000 Path objects.
    found.sort(key=lambda item: item[0].replace(os.sep, "\x00"))
    return found


def load_file(path: Path) -> Article:
    """One article file. Raises ArticleError, also for a file that is not UTF-8 or too large."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ArticleError(path, None, f"the file holds {path.stat().st_size:,} bytes, more "
                               f"than an article can ({MAX_FILE_BYTES:,}): split it, or move "
                               "reference material out of content/", "too_large")
        return parse_article(path.read_text(encoding="utf-8"), path)
    except UnicodeDecodeError as exc:
        raise ArticleError(path, None, f"not UTF-8 text ({exc.reason}): save as UTF-8",
                           "not_utf8") from None


def duplicate_id(article_id: str, path: Path | str, owner: Path | str) -> ArticleError:
    """The error for a file whose id `owner` holds, at the file's 'id:' line."""
    return ArticleError(path, _line_of_id(path),
                        f"id '{article_id}' is used by {owner} too: this file is left out "
                        "until its id is changed", "id_taken", id=article_id)


def _line_of_id(path: Path | str) -> int:
    try:
        with open(path, encoding="utf-8-sig") as lines:
            for number, line in enumerate(lines, start=1):
                if line.startswith("id:"):
                    return number
                if number > 200:
                    break
    except (OSError, UnicodeDecodeError):
        pass
    return 2


def load_folder(content_dir: Path) -> tuple[list[Article], list[ArticleError]]:
    """Every article under content_dir. A broken file is reported and skipped, never fatal."""
    articles, errors, seen = [], [], {}
    for path in map(Path, article_files(content_dir)):
        try:
            article = load_file(path)
        except ArticleError as exc:
            errors.append(exc)
            continue
        if article.id in seen:
            errors.append(duplicate_id(article.id, path, seen[article.id]))
            continue
        seen[article.id] = path
        articles.append(article)
    return articles, errors
