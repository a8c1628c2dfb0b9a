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
# For uvicorn.run / uvicorn.Config. httptools parses a request in C: a search over HTTP took
# 0.3 ms less than with h11, uvicorn's pure-Python parser (docs/performance.md). It cannot hold
# a URL past 64 KiB: such a request gets a 400 "Invalid HTTP request received." (a query's own
# limit, 200 characters, is answered with a 422 and its reason well before that).
UVICORN_OPTIONS = {"http": "httptools"}
MALLOC_ARENAS = 2


def tune_for_serving() -> None:
    """Call from the event loop at startup, before request threads exist."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = SEARCH_THREADS
    limit_arenas(MALLOC_ARENAS)
