"""The CIFAR pickle format, both ways.

Reading: :class:`CifarUnpickler` resolves only the globals a CIFAR batch needs (numpy arrays and
byte strings), so a pickle that tries to call anything else is refused. Writing:
:func:`py2_pickle_dumps` stores byte strings as Python-2 ``str`` opcodes, as the official
pickles (written by Python 2) do; ``kdecay synth`` uses it.
"""

from __future__ import annotations

import codecs
import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from kdecay.checks import DataError

__all__ = ["CifarUnpickler", "load_pickle", "py2_pickle_dumps"]


def _numpy_reconstruct() -> Any:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray._reconstruct


class CifarUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals a CIFAR pickle needs (numpy arrays, bytes)."""

    _ALLOWED: dict[tuple[str, str], Any] = {  # noqa: RUF012
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def load_pickle(path: Path) -> dict[bytes, Any]:
    if not path.is_file():
        raise DataError(
            f"{path.name} is missing from the archive; it is not an official CIFAR archive: "
            "delete it and download it again"
        )
    try:
        with path.open("rb") as f:
            obj = CifarUnpickler(f, encoding="bytes").load()
    except Exception as exc:
        raise DataError(
            f"{path.name} in the archive could not be parsed ({exc}); delete the archive and "
            "download it again"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path.name} does not hold a dict; not an official CIFAR archive")
    return obj


class _Py2Pickler(pickle._Pickler):
    """Protocol-2 pickler writing ``bytes`` and ``str`` as Python-2 ``str`` (BINSTRING).

    Python 3 pickles ``bytes`` at protocol 2 as ``_codecs.encode(...)`` calls, which always load
    back as ``bytes``; the official CIFAR pickles were written by Python 2 and hold plain
    string opcodes instead, which ``pickle.load(..., encoding="latin1")`` decodes to ``str``
    and ``encoding="bytes"`` to ``bytes``. Text (only the ``"u1"``, ``"|"`` of numpy's dtype
    state here) is written the same way, as Python 2 did.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    def _save_text_as_py2_str(self, obj: str) -> None:
        self._save_py2_str(obj.encode("latin-1"))

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_text_as_py2_str


def py2_pickle_dumps(obj: Any) -> bytes:
    """Pickle ``obj`` with protocol 2, byte strings stored as Python-2 ``str`` like CIFAR's."""
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()
