"""What is in the content folder, reading only the files that changed since they were parsed.

A file whose size and modification time match the store's record is taken from the store. The
record is trusted only when the file was read well after its last modification: a file edited
within the same clock tick as an earlier read could keep its time, so such a file is read again
(git calls this the "racily clean" case)."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

from kb.article import Article, article_files, duplicate_id, load_file
from kb.errors import ArticleError
from kb.store import Store

RACY_NS = 2_000_000_000  # coarser than the timestamp tick of any common file system


@dataclass
class Found:
    path: str
    id: str
    content_hash: str
    tags: tuple[str, ...]
    article: Article | None  # None when the store's parsed copy is current


def scan(content_dir: Path, store: Store, reread: bool = False) -> tuple[list[Found], list]:
    """Every article file (in load_folder's order, with its rules for broken files and
    duplicate ids) and the errors; `reread` ignores the store's records."""
    known = {} if reread else store.files()
    found, errors, seen, fresh = [], [], {}, []
    now = time.time_ns()
    paths = article_files(content_dir)
    for key in paths:
        try:
            st = os.stat(key)
        except OSError:
            continue  # removed while we looked
        rec = known.get(key)
        if (rec and rec.mtime_ns == st.st_mtime_ns and rec.size == st.st_size
                and rec.checked_ns - rec.mtime_ns > RACY_NS):
            entry = Found(key, rec.id, rec.content_hash, tuple(rec.tags), None)
        else:
            try:
                article = load_file(Path(key))
            except ArticleError as exc:
                errors.append(exc)
                continue
            fresh.append((key, st.st_mtime_ns, st.st_size, now, article))
            entry = Found(key, article.id, article.content_hash, article.tags, article)
        duplicate = duplicate_id(entry.id, Path(key), seen)
        if duplicate:
            errors.append(duplicate)
            continue
        found.append(entry)
    walked = set(paths)
    store.forget_files([p for p in known if p not in walked])
    store.save_files(fresh)
    return found, errors


def articles(found: list[Found], store: Store) -> list[Article]:
    """The parsed articles of scan results, from the store where they were not read now."""
    cached = store.articles([f.path for f in found if f.article is None])
    return [f.article or cached[f.path] for f in found]
