"""The CIFAR pickle format, both ways, with bounded cost.

Reading: :class:`CifarUnpickler` builds a CIFAR batch and nothing else, and never pays more
than a batch costs. It is pickle's pure-Python unpickler with every path that could allocate
checked first:

* globals resolve only to guarded stand-ins: ``numpy.core.multiarray._reconstruct`` makes an
  empty array (of class ``numpy.ndarray``, shape ``(0,)``: nothing else), ``numpy.dtype``
  takes a plain numeric type code, ``_codecs.encode`` only latin-1 text (what Python 3
  writes for bytes at protocol 2; no ``hex`` or other chains), and ``numpy.ndarray`` itself is
  a token that refuses to be called (no array from a missing, shared or zero-stride buffer);
* an array's state (BUILD) is applied only when its raw bytes are exactly
  ``prod(shape) x itemsize`` and at most :data:`MAX_ARRAY_BYTES`; BUILD on anything but an
  array or a dtype is refused;
* at most :data:`MAX_OPCODES` opcodes and :data:`MAX_ITEMS` container items in all, so memo
  references cannot multiply an object.

The official archives (protocol 2, written by Python 2, read with ``encoding="bytes"``) and
the synthetic ones load unchanged. Writing: :func:`py2_pickle_dumps` stores byte strings as
Python-2 ``str`` opcodes, as the official pickles do; ``kdecay synth`` uses it.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from kdecay.checks import DataError

__all__ = ["CifarUnpickler", "load_pickle", "py2_pickle_dumps"]

MAX_ARRAY_BYTES = 200 * 2**20  # CIFAR-100's train array is 153,600,000 bytes
MAX_OPCODES = 1_000_000  # a CIFAR-100 train pickle has about 250,000
MAX_ITEMS = 1_000_000  # list/dict/tuple items in all (labels, fine and coarse, file names)
NUMERIC_CODES = frozenset(["u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f4", "f8", "b1"])


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for something a CIFAR batch never holds."""


def _numpy_reconstruct() -> Any:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray._reconstruct


class _NdarrayToken:
    """What ``numpy.ndarray`` resolves to: accepted by :func:`_empty_array`, never called."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafePickleError(
            "numpy.ndarray(...) is called directly (an array without its own pickled buffer)"
        )


NDARRAY = _NdarrayToken()


def _empty_array(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
    """numpy's ``_reconstruct``, only as numpy pickles an array: an empty ndarray whose
    state (shape, dtype, bytes) the BUILD that follows sets."""
    if cls is not NDARRAY or tuple(shape) != (0,) or typecode not in (b"b", "b"):
        raise UnsafePickleError(f"_reconstruct({cls!r}, {shape!r}, {typecode!r})")
    return _numpy_reconstruct()(np.ndarray, (0,), b"b")


def _dtype(code: Any, align: Any = False, copy: Any = True) -> np.dtype:
    text = code.decode("latin-1") if isinstance(code, bytes) else code
    if text not in NUMERIC_CODES:
        raise UnsafePickleError(f"dtype {code!r} (only plain numeric types)")
    return np.dtype(text)


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    name = encoding.decode("latin-1") if isinstance(encoding, bytes) else encoding
    if name not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(f"_codecs.encode(..., {name!r}) (only latin-1 text)")
    if len(text) > MAX_ARRAY_BYTES:
        raise UnsafePickleError(f"a string of {len(text):,} characters")
    return text.encode("latin-1")


def _check_array_state(state: Any) -> None:
    """``(version, shape, dtype, is_fortran, raw bytes)`` whose bytes fill the shape exactly."""
    if not (isinstance(state, tuple) and len(state) == 5):
        raise UnsafePickleError("an array state that is not (version, shape, dtype, order, data)")
    _, shape, dtype, _, raw = state
    ok_shape = isinstance(shape, tuple) and len(shape) <= 4
    if not ok_shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise UnsafePickleError(f"array shape {shape!r}")
    if not isinstance(dtype, np.dtype) or not isinstance(raw, bytes):
        raise UnsafePickleError("an array whose data is not a plain byte string")
    size = math.prod(shape) * dtype.itemsize
    if size > MAX_ARRAY_BYTES or len(raw) != size:
        raise UnsafePickleError(
            f"an array of shape {shape} ({size:,} bytes) with {len(raw):,} bytes of data"
        )


class CifarUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its opcodes can be guarded
    """Unpickler of CIFAR batches with bounded cost (module docstring)."""

    _ALLOWED: dict[tuple[str, str], Any] = {  # noqa: RUF012
        ("numpy.core.multiarray", "_reconstruct"): _empty_array,
        ("numpy._core.multiarray", "_reconstruct"): _empty_array,
        ("numpy", "ndarray"): NDARRAY,
        ("numpy", "dtype"): _dtype,
        ("_codecs", "encode"): _latin1,
    }

    def __init__(self, file: Any, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._opcodes = 0

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"global {module}.{name} is not allowed") from None

    def load_build(self) -> None:
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray):
            _check_array_state(state)
        elif not isinstance(inst, np.dtype) or not (isinstance(state, tuple) and len(state) <= 9):
            raise UnsafePickleError(f"BUILD of a {type(inst).__name__}")
        super().load_build()


def _counted(op: Any) -> Any:
    """An opcode that counts itself: every object reference on the stack comes from one
    opcode, so :data:`MAX_OPCODES` bounds what memo references can multiply."""

    def run(self: CifarUnpickler) -> None:
        self._opcodes += 1
        if self._opcodes > MAX_OPCODES:
            raise UnsafePickleError(f"more than {MAX_OPCODES:,} pickle operations")
        op(self)

    return run


def _refused(name: str) -> Any:
    def run(self: CifarUnpickler) -> None:
        raise UnsafePickleError(f"the {name} opcode (never in a CIFAR batch)")

    return run


CifarUnpickler.dispatch = {
    code: _counted(CifarUnpickler.load_build if code == pickle.BUILD[0] else op)
    for code, op in pickle._Unpickler.dispatch.items()
}
for _name in ("INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"):
    CifarUnpickler.dispatch[getattr(pickle, _name)[0]] = _refused(_name)


def load_pickle(path: Path) -> dict[bytes, Any]:
    """The dict of one CIFAR pickle, unpickled by :class:`CifarUnpickler`; every failure is a
    :class:`DataError` naming the member and what is wrong."""
    if not path.is_file():
        raise DataError(
            f"{path.name} is missing from the archive; it is not an official CIFAR archive: "
            "delete it and download it again"
        )
    try:
        with path.open("rb") as f:
            obj = CifarUnpickler(f, encoding="bytes").load()
    except UnsafePickleError as exc:
        raise DataError(
            f"{path.name} in the archive is refused: it asks for {exc}, which no CIFAR batch "
            "holds; delete the archive and download the official one"
        ) from exc
    except Exception as exc:
        raise DataError(
            f"{path.name} in the archive could not be parsed ({type(exc).__name__}: {exc}); "
            "delete the archive and download it again"
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
