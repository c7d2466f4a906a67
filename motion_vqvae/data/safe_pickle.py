"""Load pickles and joblib files that hold only numpy arrays and plain containers, without running code.

A pickle is a program: any global it names gets imported and called. ``SafeUnpickler.find_class`` therefore
resolves names through a fixed table of harmless callables (numpy's array/dtype/scalar reconstructors under
their numpy 1.x and 2.x module names, builtin containers and numbers) and refuses everything else, naming
the offending global. Nothing is imported by name: the table maps to objects this module already holds.

joblib files (``joblib.dump``) are pickles in which every array is replaced by a
``joblib.numpy_pickle.NumpyArrayWrapper`` object followed, outside the pickle stream, by the raw array
bytes. joblib itself is never imported here: that global maps to :class:`_JoblibArrayHeader`, an inert
record that only stores the shape/dtype/order state it is given (validated keys, no methods called on
load). After its BUILD opcode the unpickler reads ``prod(shape) * itemsize`` bytes (after joblib's one
padding-length byte and padding) straight from the stream and replaces the record with the array, as
joblib does. Object arrays (which joblib stores as a nested pickle) are refused. zlib/gzip/bz2/xz/lzma
compressed joblib files are decompressed with the standard library first.
"""

from __future__ import annotations

import bz2
import collections
import gzip
import io
import lzma
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np


class UnsafePickleError(ValueError):
    """The file references a global outside the allow-list, or is not a data-only pickle."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes; only the latin-1 codec is allowed."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"_codecs.encode with codec {encoding!r} is not allowed (only latin1)")
    return text.encode("latin1")


class _JoblibArrayHeader:
    """Inert stand-in for ``joblib.numpy_pickle.NumpyArrayWrapper``: holds array metadata, nothing more."""

    _KEYS = frozenset({"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"})

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not set(state) <= self._KEYS:
            raise UnsafePickleError(f"unexpected joblib array header state {state!r}")
        self.state = state


# The callables numpy pickles name, taken from numpy's own reductions so both module spellings
# (numpy.core.* in numpy 1.x, numpy._core.* in numpy 2.x) resolve to whatever this numpy has.
_RECONSTRUCT = np.array(0.0).__reduce__()[0]
_SCALAR = np.float64(0.0).__reduce__()[0]
_FROMBUFFER = np.zeros(2).__reduce_ex__(5)[0]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): _JoblibArrayHeader,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _RECONSTRUCT
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _SCALAR
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _FROMBUFFER
for _builtin in (dict, list, tuple, set, frozenset, int, float, complex, bool, str, bytes, bytearray):
    for _module in ("builtins", "__builtin__"):  # protocol 0-2 pickles spell it the Python 2 way
        _ALLOWED[(_module, _builtin.__name__)] = _builtin


class SafeUnpickler(pickle._Unpickler):
    """Allow-list unpickler for plain pickles and joblib files.

    Built on the pure-Python unpickler (``pickle._Unpickler``, which joblib builds on too) because reading
    joblib's raw array bytes right after a BUILD opcode needs its per-opcode dispatch table; the C
    ``pickle.Unpickler`` reads ahead and offers no such hook.
    """

    def __init__(self, stream: io.BytesIO, source: str) -> None:
        super().__init__(stream)
        self._stream = stream
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refusing to load: the pickle references the global '{module}.{name}', "
                "which is not on the allow-list (numpy arrays, dtypes and scalars, builtin containers and "
                "numbers). "
                "A motion data file must never execute code; re-save it as plain dicts of numpy arrays."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: persistent ids are not allowed in a motion file ({pid!r})")

    def _load_build_then_joblib_array(self) -> None:
        super().load_build()
        if isinstance(self.stack[-1], _JoblibArrayHeader):
            self.stack[-1] = self._read_joblib_array(self.stack[-1].state)

    dispatch = pickle._Unpickler.dispatch.copy()
    dispatch[pickle.BUILD[0]] = _load_build_then_joblib_array

    def _read_joblib_array(self, state: dict[str, Any]) -> np.ndarray:
        shape, order, dtype = state.get("shape"), state.get("order", "C"), state.get("dtype")
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise UnsafePickleError(f"{self._source}: joblib array of dtype {dtype!r} is not allowed")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise UnsafePickleError(f"{self._source}: joblib array has an invalid shape {shape!r}")
        if order not in ("C", "F"):
            raise UnsafePickleError(f"{self._source}: joblib array has an invalid order {order!r}")
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self.read(1)[0]
            self.read(padding)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        remaining = len(self._stream.getbuffer()) - self._stream.tell()
        if nbytes > remaining:
            raise UnsafePickleError(
                f"{self._source}: truncated joblib file: an array of shape {shape} needs {nbytes} bytes, "
                f"only {remaining} left"
            )
        flat = np.frombuffer(self.read(nbytes), dtype=dtype).copy()
        array = flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)
        return array.astype(array.dtype.newbyteorder("="), copy=False)


# joblib's compressors write one compressed stream of the whole file; recognised by their magic bytes.
_DECOMPRESSORS = (
    (b"\x1f\x8b", gzip.decompress),
    (b"BZh", bz2.decompress),
    (b"\xfd7zXZ", lzma.decompress),
    (b"\x5d\x00\x00", lzma.decompress),
    (b"\x78", zlib.decompress),
)


def safe_load(path: str | Path) -> Any:
    """The object in a pickle or joblib file, refusing any global outside the allow-list."""
    path = Path(path)
    data = path.read_bytes()
    for magic, decompress in _DECOMPRESSORS:
        if data.startswith(magic):
            data = decompress(data)
            break
    try:
        return SafeUnpickler(io.BytesIO(data), str(path)).load()
    except UnsafePickleError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        IndexError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as err:
        raise ValueError(f"{path}: not a readable pickle/joblib file ({type(err).__name__}: {err})") from err
