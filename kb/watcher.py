"""The content watcher of `kb serve`: files changed on disk (a text editor, `git pull`, an
import) are indexed within about a second, without a restart.

It polls modification times and sizes rather than asking the OS for events: that needs no new
dependency, works on every file system (network mounts included), and a poll of a few thousand
files costs a few milliseconds. Its first pass also repairs a crash between writing an article
and indexing it: reindex() compares each file's content hash with the live snapshot's and
builds only when they differ."""

import logging
import os
import threading
from pathlib import Path

from kb.article import article_files
from kb.errors import KBError
from kb.knowledge_base import IndexReport, KnowledgeBase, report_errors

log = logging.getLogger("kb.watcher")
POLL_SECONDS = 1.0
MAX_BACKOFF = 60.0  # seconds between tries while indexing keeps failing


def signature(content_dir: Path) -> dict[str, tuple[int, int]]:
    """(modification time, size) of every file the index reads: articles and dictionaries."""
    paths = article_files(content_dir)
    folder = Path(content_dir) / "_dict"
    if folder.is_dir():
        paths += [str(p) for p in folder.glob("*.txt")]
    found = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue  # removed while we looked
        found[path] = (st.st_mtime_ns, st.st_size)
    return found


class ContentWatcher:
    """A daemon thread that reindexes when content/ changes; start() and stop()."""

    def __init__(self, kb: KnowledgeBase, interval: float = POLL_SECONDS):
        self.kb = kb
        self.interval = interval
        self._seen: dict | None = None  # None: nothing indexed by us yet, so check at once
        self._stop = threading.Event()
        self.last_error: str | None = None  # the failure indexing is stuck at, for /readyz
        self._thread: threading.Thread | None = None

    def check(self) -> IndexReport | None:
        """One poll: reindex if anything changed since the last one (always on the first)."""
        now = signature(self.kb.content_dir)
        if now == self._seen:
            return None
        report = self.kb.reindex()
        self._seen = now  # taken before the build: a change made during it is seen next time
        for line in report_errors(report):  # a file broken now builds nothing, yet must be told
            log.warning("%s", line)
        if report.build.startswith("none"):
            return report
        self.kb.searcher()  # load the new snapshot here, not in the next agent's search
        log.info("content changed: %d new, %d changed, %d removed; snapshot %s (%s)",
                 len(report.added), len(report.changed), len(report.removed),
                 report.snapshot, report.build)
        return report

    def run(self, once: bool = False) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as exc:  # a bad moment (say, the model failing) must not end watching
                failures += 1
                self._failed(exc, once)
            else:
                if self.last_error:
                    log.info("indexing content/ works again")
                failures, self.last_error = 0, None
            if once:
                return
            # A failure that stays (a full disk, a moved folder) is retried less and less often:
            # every second, it wrote a traceback a second onto the disk that was already full.
            self._stop.wait(min(self.interval * 2 ** failures, MAX_BACKOFF) if failures
                            else self.interval)

    def _failed(self, exc: Exception, once: bool) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if error != self.last_error:  # said once, until it changes or goes away
            what = "run `kb index`" if once else "retrying, less often while it keeps failing"
            if isinstance(exc, KBError | OSError):  # says what to do by itself
                log.error("reindexing content/ failed: %s; %s", error, what)
            else:
                log.exception("reindexing content/ failed; %s", what)
        self.last_error = error

    def start(self, once: bool = False) -> "ContentWatcher":
        """Watch in a daemon thread; `once`: only the first pass, the crash repair."""
        self._thread = threading.Thread(target=self.run, args=(once,), daemon=True,
                                        name="kb-content-repair" if once else "kb-content-watcher")
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
