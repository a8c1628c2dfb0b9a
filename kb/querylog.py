"""The query log: every search, what the agent did with it, and the agents' feedback.

A search must never wait for the log. `QueryLog.log_search` only puts a tuple on a bounded
queue (microseconds) and returns the query id; one background thread masks the text
(kb/masking.py), and writes batches in one transaction each. When the queue is full (the disk
stalls, another process holds the write lock for long) the entry is dropped and counted, and the
count is written to the `drops` table once the writer is back, so the report can say how many
searches went unlogged. The file is SQLite in WAL mode with a busy timeout: several server
workers may each run a writer, and `kb report` reads while they write."""

import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from kb.errors import ConfigError
from kb.masking import mask

LOG_FILE = "querylog.sqlite"  # in the data folder
TOP = 5  # results kept per search: enough for "never in the top 3" and the report's answers
DAY = 86_400
EVENT_KINDS = ("opened", "copied")
log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS searches (
    query_id TEXT PRIMARY KEY, ts REAL NOT NULL, at TEXT NOT NULL, query TEXT NOT NULL,
    results TEXT NOT NULL, top_id TEXT, top_score REAL, confident INTEGER NOT NULL,
    category TEXT, agent TEXT);
CREATE INDEX IF NOT EXISTS searches_at ON searches(at);
CREATE INDEX IF NOT EXISTS searches_ts ON searches(ts);
CREATE TABLE IF NOT EXISTS events (
    query_id TEXT, ts REAL NOT NULL, at TEXT NOT NULL, article_id TEXT NOT NULL,
    kind TEXT NOT NULL, agent TEXT);
CREATE INDEX IF NOT EXISTS events_at ON events(at);
CREATE TABLE IF NOT EXISTS feedback (
    query_id TEXT, ts REAL NOT NULL, at TEXT NOT NULL, article_id TEXT NOT NULL,
    useful INTEGER NOT NULL, comment TEXT, agent TEXT);
CREATE INDEX IF NOT EXISTS feedback_at ON feedback(at);
CREATE TABLE IF NOT EXISTS drops (ts REAL NOT NULL, at TEXT NOT NULL, count INTEGER NOT NULL);
"""
TABLES = ("searches", "events", "feedback", "drops")


@dataclass(frozen=True)
class LogSettings:
    path: Path
    retention_days: int = 365
    timezone: str = "Asia/Shanghai"  # days and hours of the report are the centre's
    capacity: int = 10_000  # queued entries before new ones are dropped
    batch: int = 500  # entries per transaction at most
    busy_timeout: float = 10.0  # seconds the writer waits for another writer's lock
    linger: float = 0.5  # seconds the writer gathers entries before a transaction


def connect(path: Path, busy_timeout: float = 10.0) -> sqlite3.Connection:
    """A connection to the log file, its tables created if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=busy_timeout, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    db.execute("PRAGMA synchronous=NORMAL")  # WAL keeps it consistent; a crash loses the tail
    db.executescript(SCHEMA)
    return db


class QueryLog:
    """Logs searches, article events and feedback from a background thread."""

    def __init__(self, settings: LogSettings):
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self._queue: queue.Queue = queue.Queue(settings.capacity)
        self._dropped = 0
        self._dropped_written = 0
        self._drop_lock = threading.Lock()
        self._last_purge = 0.0
        self._wake = threading.Event()
        try:  # fail at start, not in the thread, and say which file and which setting
            connect(settings.path, settings.busy_timeout).close()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"the query log {settings.path} cannot be opened ({exc}): make its "
                              "folder writable, or set KB_QUERY_LOG=false to serve without "
                              "it") from None
        self._thread = threading.Thread(target=self._run, name="querylog", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Entries dropped because the queue was full, since start."""
        return self._dropped

    # The request side: never blocks.
    def log_search(self, query: str, hits: Sequence, *, category: str | None = None,
                   agent: str | None = None, at: float | None = None) -> str:
        """Queue a search (hits: indexer Hit objects, best first); returns its query id at
        once, logged or not. `at` (epoch seconds) is for imports and tests."""
        query_id = uuid.uuid4().hex
        # The category goes with each result: the report still places a deleted article.
        top = [(h.id, round(h.score, 4), h.category) for h in hits[:TOP]]
        confident = bool(hits and hits[0].confident)
        self._put(("search", at or time.time(),
                   (query_id, query, top, confident, category or None, agent or None)))
        return query_id

    def log_event(self, query_id: str | None, article_id: str, kind: str,
                  agent: str | None = None, at: float | None = None) -> bool:
        """Queue an 'opened' or 'copied' event; False when it was dropped."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind must be one of {', '.join(EVENT_KINDS)}")
        return self._put(("event", at or time.time(), (query_id, article_id, kind, agent)))

    def log_feedback(self, query_id: str | None, article_id: str, useful: bool,
                     comment: str | None = None, agent: str | None = None,
                     at: float | None = None) -> bool:
        """Queue an agent's verdict on an answer; False when it was dropped."""
        return self._put(("feedback", at or time.time(),
                          (query_id, article_id, useful, comment or None, agent)))

    def _put(self, item) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            with self._drop_lock:
                self._dropped += 1
            return False

    # Waiting for the writer: tests, shutdown, the report of the running month.
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        done = threading.Event()
        try:
            self._queue.put(("flush", 0.0, done), timeout=timeout)
        except queue.Full:
            return False
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop the writer."""
        if self._thread.is_alive():
            try:
                self._queue.put(("stop", 0.0, None), timeout=timeout)
            except queue.Full:
                return
            self._wake.set()
            self._thread.join(timeout)

    # The writer thread.
    def _run(self) -> None:
        db = connect(self.settings.path, self.settings.busy_timeout)
        try:
            self._purge_if_due(db)
            full = False
            while True:
                batch = [self._queue.get()]
                if not full and batch[0][0] not in ("flush", "stop"):
                    # Gather what comes in the next moment: one transaction instead of many,
                    # and the writer wakes seldom, so it rarely holds the GIL during a search.
                    self._wake.wait(self.settings.linger)
                    self._wake.clear()
                while len(batch) < self.settings.batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                full = len(batch) >= self.settings.batch
                self._write(db, [b for b in batch if b[0] not in ("flush", "stop")])
                self._purge_if_due(db)
                for kind, _, payload in batch:
                    if kind == "flush":
                        payload.set()
                if any(kind == "stop" for kind, _, _ in batch):
                    return
        finally:
            db.close()

    def _write(self, db: sqlite3.Connection, batch: list) -> None:
        rows: dict[str, list] = {"searches": [], "events": [], "feedback": [], "drops": []}
        for kind, ts, payload in batch:
            at = self.local_time(ts)
            if kind == "search":
                query_id, query, top, confident, category, agent = payload
                rows["searches"].append((
                    query_id, ts, at, mask(query), json.dumps(top),
                    top[0][0] if top else None, top[0][1] if top else None,
                    int(confident), category, agent))
            elif kind == "event":
                query_id, article_id, event, agent = payload
                rows["events"].append((query_id, ts, at, article_id, event, agent))
            elif kind == "feedback":
                query_id, article_id, useful, comment, agent = payload
                rows["feedback"].append((query_id, ts, at, article_id, int(useful),
                                         mask(comment) if comment else None, agent))
        dropped = self._dropped - self._dropped_written
        if dropped:
            now = time.time()
            rows["drops"].append((now, self.local_time(now), dropped))
        if not any(rows.values()):
            return
        try:
            with db:
                for table, values in rows.items():
                    if values:
                        marks = ",".join("?" * len(values[0]))
                        db.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", values)
            self._dropped_written += dropped
        except sqlite3.Error as exc:  # a stalled or full disk must not end the thread
            log.warning("query log: %d entries not written: %s", len(batch), exc)
            with self._drop_lock:
                self._dropped += len(batch)

    def _purge_if_due(self, db: sqlite3.Connection) -> None:
        now = time.time()
        if now - self._last_purge < DAY:
            return
        self._last_purge = now
        try:
            purge(db, now - self.settings.retention_days * DAY)
        except sqlite3.Error as exc:
            log.warning("query log: old entries not purged: %s", exc)

    def local_time(self, ts: float) -> str:
        """Epoch seconds as the centre's local time, 'YYYY-MM-DD HH:MM:SS'."""
        return datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%d %H:%M:%S")


def purge(db: sqlite3.Connection, before: float) -> int:
    """Delete everything logged before `before` (epoch seconds); returns the rows deleted."""
    with db:
        return sum(db.execute(f"DELETE FROM {table} WHERE ts < ?", (before,)).rowcount
                   for table in TABLES)
