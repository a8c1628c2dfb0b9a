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
    kept: dict[str, str] = field(default_factory=dict)  # broken file -> id kept at its last version
    _tags: list[str] = field(default_factory=list)  # per article, joined by TAG_SEP

    def tags(self) -> list[str]:
        return [t for t in TAG_SEP.join(self._tags).split(TAG_SEP) if t]

    def articles(self, ids: list[str], store: Store) -> list[Article]:
        """The parsed articles, from the store where they were not read now."""
        cached = store.articles([self.paths[i] for i in ids if i not in self.parsed])
        return [self.parsed.get(i) or cached[self.paths[i]] for i in ids]


def scan(content_dir: Path, store: Store, reread: bool = False) -> Scan:
    """Every article file; `reread` ignores the store's records. Runs per file on every
    index, hence the plain tuples.

    Two rules keep what agents are served while an editor's file is wrong:
    - A file that no longer parses keeps its last good version, from the store, until it is
      fixed or removed: a typo in a title must not take the outage article off the air.
    - Of two files with one id, the one the store already has under that id keeps it, so that
      a copied file (a draft, a backup) cannot replace the live article; the newcomer is the
      one reported. The newcomer is not recorded, so it never becomes the incumbent."""
    records = store.files()
    known = {} if reread else records
    out, entries, now = Scan(), [], time.time_ns()
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
                last = records.get(key)
                if not last:
                    continue
                article, (aid, digest, tags) = None, last[4:7]  # its last good version
                out.kept[exc.path] = aid  # as the error names the file
            else:
                aid, digest, tags = article.id, article.content_hash, TAG_SEP.join(article.tags)
        entries.append((key, st, aid, digest, tags, article))
    owners = _owners(entries, records)
    fresh = []
    for key, st, aid, digest, tags, article in entries:
        if owners[aid] != key:
            out.errors.append(duplicate_id(aid, key, owners[aid]))
            out.kept.pop(str(Path(key)), None)
            continue
        out.paths[aid] = key
        out.hashes[aid] = digest
        out._tags.append(tags)
        if article:
            out.parsed[aid] = article
            fresh.append((key, st, now, article))
    walked = {path for path, _ in listed}
    store.forget_files([p for p in records if p not in walked])
    store.save_files(fresh)
    return out


def _owners(entries: list[tuple], records: dict) -> dict[str, str]:
    """id -> the file that holds it: the first (in walk order) the store has under that id,
    else the first."""
    owners: dict[str, str] = {}
    for key, _, aid, *_ in entries:
        incumbent = records.get(key, NOT_KNOWN)[4] == aid
        if aid not in owners or (incumbent and records.get(owners[aid], NOT_KNOWN)[4] != aid):
            owners[aid] = key
    return owners
