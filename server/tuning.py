"""Process settings for serving on a small machine (docs/performance.md has the measurements).

- At most SEARCH_THREADS requests run at once; the rest wait in the event loop. On two cores more
  only add contention, and memory: a search at 50,000 articles holds a few arrays of one number
  per passage (1.5 MB each).
- glibc gives each busy thread its own malloc arena, and an arena keeps what was freed in it;
  with a dozen request threads that is a hundred MB of resident memory doing nothing. Two
  arenas cost no measurable speed here."""

import anyio.to_thread

from kb.allocator import limit_arenas

SEARCH_THREADS = 8  # anyio's default is 40
# For uvicorn.run / uvicorn.Config. Its h11 parser refuses a request head still incomplete past
# 16 KiB and closes the connection, so a long query got either our 422 with its reason or a
# bare 400 and a reset, depending on how the bytes happened to arrive. 256 KiB holds any
# request line a browser sends; bodies have their own limit (server/limits.py).
UVICORN_OPTIONS = {"h11_max_incomplete_event_size": 256 * 1024}
MALLOC_ARENAS = 2


def tune_for_serving() -> None:
    """Call from the event loop at startup, before request threads exist."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = SEARCH_THREADS
    limit_arenas(MALLOC_ARENAS)
