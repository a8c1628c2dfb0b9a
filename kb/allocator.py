"""glibc's allocator, for a process that serves for days: what it keeps, and what it gives back.
Elsewhere (musl, macOS) these do nothing."""

import ctypes
import ctypes.util
import functools

_M_ARENA_MAX = -8  # glibc's mallopt parameter number


@functools.cache
def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both must be there: glibc
        return libc
    except (OSError, AttributeError, TypeError):
        return None


def limit_arenas(n: int) -> None:
    """At most n malloc arenas (server/tuning.py says why)."""
    if _glibc() is not None:
        _glibc().mallopt(_M_ARENA_MAX, n)


def give_back_freed() -> bool:
    """Return freed pages inside the heaps to the system; False where there is no glibc.
    A replaced snapshot frees tens of MB of arrays that the next one's rarely fit exactly, and
    glibc only gives back what lies at the top of a heap: 50,000 articles after 80 saves in one
    process, 870-905 MiB resident with this after each replacement against 918-990 without
    (docs/performance.md). It walks every heap: about 5 ms at that size."""
    if _glibc() is None:
        return False
    _glibc().malloc_trim(0)
    return True


_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25  # Linux
HUGE_PAGE = 2 << 20


def huge_pages(address: int, size: int) -> int:
    """Back the 2 MiB pages wholly inside [address, address + size) with huge pages, now
    (MADV_COLLAPSE, Linux 6.1+) where the kernel can; returns the bytes it took. Random reads
    over a large array then miss the TLB far less (indexer/vector.py says where it pays)."""
    if _glibc() is None or not hasattr(_glibc(), "madvise"):
        return 0
    start = -(-address // HUGE_PAGE) * HUGE_PAGE
    end = (address + size) // HUGE_PAGE * HUGE_PAGE
    if end <= start:
        return 0
    madvise = _glibc().madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if madvise(start, end - start, _MADV_HUGEPAGE) != 0:
        return 0  # no transparent huge pages here
    madvise(start, end - start, _MADV_COLLAPSE)  # without it they come later, or never
    return end - start
