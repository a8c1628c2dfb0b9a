"""An exclusive lock on a file in the data folder, held across processes (several `kb serve`
workers, a `kb index` beside a server)."""

import fcntl
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, waiting: Callable[[], None] | None = None):
    """`waiting` is called once if another process holds the lock: a build waiting a minute
    for another looks hung otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                waiting()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
