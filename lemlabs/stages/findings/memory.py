"""Python's cyclic garbage collector, paused while a stage builds millions of small objects.

The findings' records, occurrences and rows are dicts and tuples without reference cycles;
each full collection while they are built walks all of them and frees nothing (at 1M rows
about a quarter of the findings stage). Reference counting frees them as before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off inside the block (or the decorated function), on again after
    if it was on before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
