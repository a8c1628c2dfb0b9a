"""What is in the content folder, reading only the files that changed since they were parsed.

A file whose size, modification time and change time (which a write always sets, even when a
tool puts the old modification time back) match the store's record is taken from the store. The
record is trusted only when the file was read well after those times: a file edited within the
same clock tick as an earlier read could keep them, so such a file is read again (git calls this
the "racily clean" case)."""

import time
from dataclasses import dataclass, field
from pathlib import Path

from kb.article import Article, article_stats, duplicate_id, load_file
from kb.errors import ArticleError
from kb.store import TAG_SEP, Store

RACY_NS = 2_000_000_000  # coarser than the timestamp tick of any common file system
NOT_KNOWN = (None, None, None, 0, "", "", "")


@dataclass
class Scan:
    """The articles of the content folder (load_folder's order and rules for broken files and
    duplicate ids): where each is, its content hash, the ones parsed now, everyone's tags."""

    paths: dict[str, str] = field(default_factory=dict)  # id -> file
    hashes: dict[str, str] = field(default_factory=dict)  # id -> content hash
    parsed: dict[str, Article] = field(default_factory=dict)  # id -> read now
    errors: list[ArticleError] = field(default_factory=list)
    _tags: list[str] = field(default_factory=list)  # per article, joined by TAG_SEP

    def tags(self) -> list[str]:
        return [t for t in TAG_SEP.join(self._tags).split(TAG_SEP) if t]

    def articles(self, ids: list[str], store: Store) -> list[Article]:
        """The parsed articles, from the store where they were not read now."""
        cached = store.articles([self.paths[i] for i in ids if i not in self.parsed])
        return [self.parsed.get(i) or cached[self.paths[i]] for i in ids]


def scan(content_dir: Path, store: Store, reread: bool = False) -> Scan:
    """Every article file; `reread` ignores the store's records. Runs per file on every
    index, hence the plain tuples."""
    known = {} if reread else store.files()
    out, fresh, now = Scan(), [], time.time_ns()
    listed = article_stats(content_dir)
    for key, st in listed:
        mtime, ctime, size, checked, aid, digest, tags = known.get(key, NOT_KNOWN)
        if (mtime == st.st_mtime_ns and ctime == st.st_ctime_ns and size == st.st_size
                and checked - RACY_NS > max(mtime, ctime)):
            article = None
        else:
            try:
                article = load_file(Path(key))
            except ArticleError as exc:
                out.errors.append(exc)
                continue
            fresh.append((key, st, now, article))
            aid, digest, tags = article.id, article.content_hash, TAG_SEP.join(article.tags)
        duplicate = duplicate_id(aid, key, out.paths)
        if duplicate:
            out.errors.append(duplicate)
            continue
        out.hashes[aid] = digest
        out._tags.append(tags)
        if article:
            out.parsed[aid] = article
    walked = {path for path, _ in listed}
    store.forget_files([p for p in known if p not in walked])
    store.save_files(fresh)
    return out
