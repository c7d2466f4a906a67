"""Decompress joblib's whole-file compressed pickles with a cap on the output size (no zip bombs).

joblib's compressors write one stream of the whole pickle: zlib, gzip, bz2, xz or lzma, recognised by their
magic bytes. Each is decompressed incrementally with ``max_length``, so a 1 MB stream of 1 GB of zeros stops
at the cap instead of allocating the gigabyte, and a truncated stream (no end-of-stream marker) is refused
instead of silently yielding a shorter pickle.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from typing import Any

from motion_vqvae.data.errors import MotionFileError, MotionSizeError

DECOMPRESSION_RATIO = 50
"""Decompressed size allowed per compressed byte. Motion arrays compress 2-5x; far beyond this is a bomb."""
DECOMPRESSED_FLOOR = 64 * 2**20
"""Small files may always expand to this many bytes (a tiny file of mostly zeros is legitimate)."""
DECOMPRESSED_CEILING = 2**30
"""No compressed motion file expands past 1 GiB, whatever its size: re-save such data uncompressed."""


def _zlib(wbits: int) -> Callable[[], Any]:
    return lambda: zlib.decompressobj(wbits)


_DECOMPRESSORS: tuple[tuple[bytes, str, Callable[[], Any]], ...] = (
    (b"\x1f\x8b", "gzip", _zlib(31)),
    (b"BZh", "bz2", bz2.BZ2Decompressor),
    (b"\xfd7zXZ", "xz", lzma.LZMADecompressor),
    (b"\x5d\x00\x00", "lzma", lzma.LZMADecompressor),
    (b"\x78", "zlib", _zlib(15)),
)


def decompressed_cap(compressed_size: int) -> int:
    """Most bytes a compressed file of ``compressed_size`` bytes may expand to."""
    return min(max(DECOMPRESSED_FLOOR, DECOMPRESSION_RATIO * compressed_size), DECOMPRESSED_CEILING)


def maybe_decompress(data: bytes, source: str) -> bytes:
    """``data`` itself, or its decompressed content when it starts with a known compressor's magic bytes."""
    found = [(kind, make) for magic, kind, make in _DECOMPRESSORS if data.startswith(magic)]
    if not found:
        return data
    kind, make = found[0]
    cap = decompressed_cap(len(data))
    decompressor = make()
    try:
        out = decompressor.decompress(data, cap + 1)
    except (zlib.error, OSError, lzma.LZMAError, EOFError) as err:
        raise MotionFileError(
            f"{source}: corrupted {kind}-compressed file ({err}); re-create it (joblib.dump) from the source",
            file=source,
        ) from err
    if len(out) > cap:
        raise MotionSizeError(
            f"{source}: the {kind} stream of {len(data)} bytes expands past {cap} bytes (the cap is "
            f"{DECOMPRESSION_RATIO}x the file size, at least {DECOMPRESSED_FLOOR} and at most "
            f"{DECOMPRESSED_CEILING} bytes); a motion file does not compress that well, so it is refused as "
            "a decompression bomb. Re-save genuine data uncompressed.",
            file=source,
        )
    if not decompressor.eof:
        raise MotionFileError(
            f"{source}: truncated {kind}-compressed file (the stream ends before its end marker, after "
            f"{len(out)} decompressed bytes); copy or re-create the file",
            file=source,
        )
    return out
