"""Hand the C heap's free pages back to the system after a large temporary allocation."""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any


def release_free_memory() -> None:
    """glibc keeps what temporary buffers freed (about 15 MB after loading a 100k-memory scope,
    20 MB after the model, more after onnxruntime's batches); give it back."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's malloc_trim from the running process's own symbols; None elsewhere (musl,
    macOS)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
