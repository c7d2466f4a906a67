"""Load pickles and joblib files that hold only numpy arrays and plain containers, without running code.

A pickle is a program: any global it names gets imported and called, any object it builds gets its
``__setstate__`` called with data from the file. ``SafeUnpickler.find_class`` therefore resolves names
through a fixed table of guarded callables and refuses everything else, naming the offending global. Nothing
is imported by name. What the table admits is exactly what a motion file needs:

- numpy arrays, scalars and dtypes of the plain numeric kinds (bool, int, uint, float, complex). A dtype's
  ``__setstate__`` only ever sees numpy's own standard state tuple: numpy crashes the process on crafted
  ones (a 47-byte pickle building ``dtype('f8', 0, 1)`` with state ``(3, '<', None, -1, -1, 0)`` segfaults);
- builtin containers and numbers, with arguments of the kinds their own pickles use.

Every size a file declares is checked against the file's size *before* anything that large is allocated:
``BYTEARRAY8`` lengths, ``bytes(n)``/``bytearray(n)``, ``_reconstruct`` shapes (their total too, so a
thousand small claims do not add up to a bomb), and, after loading, the size nested containers expand to
when shared references are followed (what ``np.asarray`` or ``repr`` would build); compressed files are
capped in :mod:`motion_vqvae.data.compression`. Each cap raises :class:`MotionSizeError`.

joblib files (``joblib.dump``) are pickles in which every array is replaced by a
``joblib.numpy_pickle.NumpyArrayWrapper`` object followed, outside the pickle stream, by the raw array bytes.
joblib itself is never imported: that global maps to :class:`_JoblibArrayHeader`, an inert record of the
shape/dtype/order state. After its BUILD opcode the unpickler reads ``prod(shape) * itemsize`` bytes (after
joblib's padding) straight from the stream, as joblib does. Object arrays (a nested pickle) are refused.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import re
import reprlib
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.data.compression import maybe_decompress
from motion_vqvae.data.errors import MotionFileError, MotionSizeError, UnsafePickleError, reading

__all__ = ["SafeUnpickler", "UnsafePickleError", "safe_load"]

ALLOCATION_FLOOR = 2**20
"""Bytes any file may declare beyond its own size (empty arrays, small scalars)."""
EXPANSION_RATIO = 8
"""Container elements (shared references counted each time they are reached) per byte of pickle."""
NUMERIC_KINDS = "biufc"
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80


def _numeric_dtype(value: Any, source: str) -> np.dtype:
    if not isinstance(value, np.dtype) or value.kind not in NUMERIC_KINDS or value.fields or value.subdtype:
        raise UnsafePickleError(
            f"{source}: refusing to load: an array or scalar of dtype {_short.repr(value)}; a motion file "
            "holds plain numeric arrays only (bool, int, uint, float, complex)"
        )
    return value


def _shape(value: Any, source: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(n) is int and n >= 0 for n in value):
        raise UnsafePickleError(f"{source}: invalid array shape {_short.repr(value)}")
    return value


def _dtype_from_code(code: Any, source: str, copy: bool = False) -> np.dtype:
    """A numeric dtype from a short type code (``'f8'``, ``b'b'``); nothing else reaches ``np.dtype``."""
    text = code.decode("latin1") if isinstance(code, bytes) else code
    if not isinstance(text, str) or not re.fullmatch(r"[biufc?]\d{0,2}", text):
        raise UnsafePickleError(f"{source}: refusing numpy dtype {_short.repr(code)}")
    return _numeric_dtype(np.dtype(text, copy=copy) if copy else np.dtype(text), source)


_DTYPE_STATE_TAIL = (None, None, None, -1, -1, 0)  # subarray, names, fields, elsize, alignment, flags


def _check_dtype_state(state: Any, source: str) -> None:
    """Only numpy's own state of a plain numeric dtype, ``(3, byteorder, None, None, None, -1, -1, 0)``."""
    ok = (
        isinstance(state, tuple)
        and len(state) in (8, 9)
        and state[0] == (3 if len(state) == 8 else 4)
        and state[1] in ("<", ">", "|", "=")
        and state[2:8] == _DTYPE_STATE_TAIL
        and (len(state) == 8 or state[8] is None)
    )
    if not ok:
        raise UnsafePickleError(f"{source}: refusing a crafted numpy dtype state {_short.repr(state)}")


class _NdarrayType:
    """Stands for the ``numpy.ndarray`` global: only ever an argument of ``_reconstruct``, never called."""


class _JoblibArrayHeader:
    """Inert stand-in for ``joblib.numpy_pickle.NumpyArrayWrapper``: holds array metadata, nothing more."""

    _KEYS = frozenset({"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"})

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not set(state) <= self._KEYS:
            raise UnsafePickleError(f"unexpected joblib array header state {_short.repr(state)}")
        self.state = state


_NUMPY_RECONSTRUCT = np.array(0.0).__reduce__()[0]
_NUMPY_SCALAR = np.float64(0.0).__reduce__()[0]
_NUMPY_FROMBUFFER = np.zeros(2).__reduce_ex__(5)[0]
_SCALAR_TYPES = (str, bytes, int, float, bool, complex)
_ITERABLE_TYPES = (list, tuple, set, frozenset, dict, str, bytes, bytearray)


class SafeUnpickler(pickle._Unpickler):
    """Allow-list unpickler with size caps, for plain pickles and joblib files.

    Built on the pure-Python unpickler (``pickle._Unpickler``, which joblib builds on too) because checking
    opcodes before they allocate, and reading joblib's raw array bytes after a BUILD, need its per-opcode
    dispatch table; the C ``pickle.Unpickler`` offers no such hook.
    """

    def __init__(self, stream: io.BytesIO, source: str) -> None:
        super().__init__(stream)
        self._stream = stream
        self._source = source
        self._size = len(stream.getbuffer())
        self._budget = self._size + ALLOCATION_FLOOR  # bytes left for allocations the file only declares
        self._allowed = self._allowed_globals()

    # -- allocation accounting -------------------------------------------------------------------
    def _allocate(self, nbytes: int, what: str) -> None:
        if nbytes > self._budget:
            raise MotionSizeError(
                f"{self._source}: {what} declares {nbytes} bytes, more than the {self._size}-byte file can "
                f"hold (at most {self._budget} bytes left); refused before allocating (corrupted or crafted)",
                file=self._source,
            )
        self._budget -= nbytes

    # -- the allow-list: guarded versions of the callables numpy and builtin pickles name ----------
    def _dtype(self, spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
        # Always a fresh copy: BUILD then sets its byte order without touching numpy's shared singletons.
        return _dtype_from_code(spec, self._source, copy=True)

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if not isinstance(subtype, _NdarrayType):
            raise UnsafePickleError(f"{self._source}: unexpected _reconstruct({_short.repr(subtype)}, ...)")
        shape = _shape(shape, self._source)
        itemsize = _dtype_from_code(dtype, self._source).itemsize
        self._allocate(math.prod(shape) * itemsize, f"an empty array of shape {shape}")
        return _NUMPY_RECONSTRUCT(np.ndarray, shape, dtype)

    def _scalar(self, dtype: Any, data: Any = None) -> Any:
        _numeric_dtype(dtype, self._source)
        if not isinstance(data, bytes) or len(data) != dtype.itemsize:
            raise UnsafePickleError(f"{self._source}: invalid numpy scalar data {_short.repr(data)}")
        return _NUMPY_SCALAR(dtype, data)

    def _frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)) or order not in ("C", "F"):
            raise UnsafePickleError(f"{self._source}: invalid numpy buffer array")
        return _NUMPY_FROMBUFFER(buf, _numeric_dtype(dtype, self._source), _shape(shape, self._source), order)

    def _bytes_like(self, kind: type) -> Callable[..., Any]:
        def build(*args: Any) -> Any:
            if len(args) == 1 and type(args[0]) is int:  # bytes(n): n zero bytes, declared not stored
                self._allocate(max(args[0], 0), f"{kind.__name__}({args[0]})")
            elif len(args) == 2 and not (isinstance(args[0], str) and args[1] in ("latin1", "latin-1")):
                raise UnsafePickleError(f"{self._source}: {kind.__name__} from {_short.repr(args)}")
            elif len(args) > 2 or (len(args) == 1 and not isinstance(args[0], (bytes, bytearray, list))):
                raise UnsafePickleError(f"{self._source}: {kind.__name__} from {_short.repr(args)}")
            return kind(*args)

        return build

    def _plain(self, kind: type, arg_types: tuple[type, ...]) -> Callable[..., Any]:
        """``kind(*args)`` only for argument types its own pickles use (no ``str`` of a shared structure)."""

        def build(*args: Any) -> Any:
            if len(args) > 2 or not all(isinstance(a, arg_types) for a in args):
                raise UnsafePickleError(f"{self._source}: {kind.__name__} from {_short.repr(args)}")
            return kind(*args)

        return build

    def _latin1_encode(self, text: Any, encoding: Any = "latin1") -> bytes:
        """``_codecs.encode`` as protocol-2 pickles use it for bytes; only the latin-1 codec is allowed."""
        if not isinstance(text, str) or not isinstance(encoding, str):
            raise UnsafePickleError(f"{self._source}: _codecs.encode of {_short.repr(text)}")
        if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
            raise UnsafePickleError(f"{self._source}: _codecs.encode with codec {encoding!r} is not allowed")
        return text.encode("latin1")

    def _allowed_globals(self) -> dict[tuple[str, str], Any]:
        allowed: dict[tuple[str, str], Any] = {
            ("numpy", "ndarray"): _NdarrayType(),
            ("numpy", "dtype"): self._dtype,
            ("_codecs", "encode"): self._latin1_encode,
            ("collections", "OrderedDict"): self._plain(collections.OrderedDict, _ITERABLE_TYPES),
            ("joblib.numpy_pickle", "NumpyArrayWrapper"): _JoblibArrayHeader,
        }
        for core in ("numpy.core", "numpy._core"):  # numpy 1.x and 2.x spellings
            allowed[(f"{core}.multiarray", "_reconstruct")] = self._reconstruct
            allowed[(f"{core}.multiarray", "scalar")] = self._scalar
            allowed[(f"{core}.numeric", "_frombuffer")] = self._frombuffer
        guarded: dict[str, Any] = {
            kind.__name__: self._plain(kind, _ITERABLE_TYPES) for kind in (dict, list, tuple, set, frozenset)
        }
        guarded.update({kind.__name__: self._plain(kind, _SCALAR_TYPES) for kind in _SCALAR_TYPES[:-1]})
        guarded.update(complex=self._plain(complex, (int, float)))
        guarded.update(bytes=self._bytes_like(bytes), bytearray=self._bytes_like(bytearray))
        for name, build in guarded.items():
            for module in ("builtins", "__builtin__"):  # protocol 0-2 pickles spell it the Python 2 way
                allowed[(module, name)] = build
        return allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refusing to load: the pickle references the global '{module}.{name}', "
                "which is not on the allow-list (numpy arrays, dtypes and scalars, builtin containers and "
                "numbers). A motion data file must never execute code; re-save it as plain dicts of numpy "
                "arrays.",
                file=self._source,
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: persistent ids are not allowed ({_short.repr(pid)})")

    # -- opcodes that allocate or call __setstate__ ----------------------------------------------
    def _load_bytearray8_checked(self) -> None:
        """BYTEARRAY8 allocates its claimed length before reading; check the claim against the file."""
        (length,) = struct.unpack("<Q", self.read(8))
        if length > self._size:
            raise MotionSizeError(
                f"{self._source}: a BYTEARRAY8 claims {length} bytes in a {self._size}-byte file; refused",
                file=self._source,
            )
        data = self.read(length)
        if len(data) != length:
            raise MotionFileError(f"{self._source}: truncated pickle (inside a bytearray)")
        self.append(bytearray(data))

    def _load_build_checked(self) -> None:
        """BUILD only on the objects whose state a motion file carries, with that state checked first."""
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.dtype):
            _check_dtype_state(state, self._source)
        elif isinstance(inst, np.ndarray):
            self._check_array_state(state)
        elif not isinstance(inst, _JoblibArrayHeader):
            raise UnsafePickleError(f"{self._source}: refusing to set the state of a {type(inst).__name__}")
        super().load_build()
        if isinstance(self.stack[-1], _JoblibArrayHeader):
            self.stack[-1] = self._read_joblib_array(self.stack[-1].state)

    def _check_array_state(self, state: Any) -> None:
        """numpy's ``(version, shape, dtype, is_fortran, raw bytes)`` with the bytes matching the shape."""
        if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
            raise UnsafePickleError(f"{self._source}: unexpected ndarray state {_short.repr(state)}")
        shape, dtype = _shape(state[1], self._source), _numeric_dtype(state[2], self._source)
        raw = state[4]
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != math.prod(shape) * dtype.itemsize:
            raise MotionFileError(
                f"{self._source}: an array of shape {shape} and dtype {dtype} comes with "
                f"{len(raw) if isinstance(raw, (bytes, bytearray)) else type(raw).__name__} bytes of data, "
                f"not {math.prod(shape) * dtype.itemsize}; the file is corrupted"
            )

    dispatch = pickle._Unpickler.dispatch.copy()
    dispatch[pickle.BUILD[0]] = _load_build_checked
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8_checked

    def _read_joblib_array(self, state: dict[str, Any]) -> np.ndarray:
        shape, order = _shape(state.get("shape"), self._source), state.get("order", "C")
        dtype = _numeric_dtype(state.get("dtype"), self._source)
        if order not in ("C", "F"):
            raise UnsafePickleError(f"{self._source}: joblib array has an invalid order {order!r}")
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self.read(1)[0]
            self.read(padding)
        nbytes = math.prod(shape) * dtype.itemsize
        remaining = self._size - self._stream.tell()
        if nbytes > remaining:
            raise MotionSizeError(
                f"{self._source}: truncated joblib file: an array of shape {shape} needs {nbytes} bytes, "
                f"only {remaining} left",
                file=self._source,
            )
        flat = np.frombuffer(self.read(nbytes), dtype=dtype).copy()
        array = flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)
        return array.astype(array.dtype.newbyteorder("="), copy=False)


def _check_expansion(obj: Any, limit: int, source: str) -> None:
    """Refuse containers that expand past ``limit`` elements when shared references are followed.

    Pickle memo references let a few kilobytes describe a list of 10^8 elements (or a cycle); converting
    that with ``np.asarray`` or printing it would allocate gigabytes. The walk stops at ``limit``.
    """
    count, todo = 0, [obj]
    while todo:
        item = todo.pop()
        count += 1
        if count > limit:
            raise MotionSizeError(
                f"{source}: its containers expand to more than {limit} elements when shared references "
                "are followed (or they contain themselves); a motion file is a few arrays per clip, so it "
                "is refused as crafted",
                file=source,
            )
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            todo.extend(item)


def safe_load(path: str | Path) -> Any:
    """The object in a pickle or joblib file, refusing any global outside the allow-list and any bomb."""
    path = Path(path)
    with reading(path, "pickle/joblib file"):
        data = maybe_decompress(path.read_bytes(), str(path))
        obj = SafeUnpickler(io.BytesIO(data), str(path)).load()
        _check_expansion(obj, EXPANSION_RATIO * len(data) + 10_000, str(path))
        return obj
