"""A restricted unpickler: PPG-DaLiA ships pickles, and a plain pickle.load runs whatever a file asks.

Only numpy array/dtype/scalar reconstruction and the byte-decoding helper that protocol-2 pickles
use are admitted; dicts, lists, strings and numbers need no class lookup at all.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO

import numpy as np

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy._core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
    ("numpy.core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
    ("_codecs", "encode"): __import__("codecs").encode,
    # protocol 2 writes an empty byte string (an empty array's data) as a call to bytes()
    ("__builtin__", "bytes"): bytes,
    ("builtins", "bytes"): bytes,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list (it may be malicious)."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refused to load '{module}.{name}': only numpy arrays, dicts, lists, strings and numbers are allowed") from None


def safe_load(stream: BinaryIO) -> Any:
    """Unpickle with Python-2 compatible decoding (DaLiA was written by Python 2) and the allow-list."""
    return _RestrictedUnpickler(stream, encoding="latin1").load()


def safe_loads(data: bytes) -> Any:
    return safe_load(io.BytesIO(data))
