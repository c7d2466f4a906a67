"""The files of a preprocessed cache, trusted only after checking: index validation, checksums and reads.

A cache folder is input like any motion file: it may be damaged, edited or changed under a running
training. So ``index.json`` is validated before any number in it is used (a shard name must be a plain file
of the folder; every offset and length must fall inside its shard), each file's checksum is verified when
the cache is opened, and rows are read with positioned reads (``os.preadv``) into the batch's own buffer.

Why not memory maps: a mapped file that shrinks under a running process kills it with SIGBUS at the next
touch of a page past the new end (exit 135, no message, no checkpoint); a short read is a number we check
and turn into an error naming the shard. Reads also leave nothing mapped, so the process's resident memory
stays flat however much of a large cache it reads. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import math
import os
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.errors import UserError

VAL_MOTIONS = "val_motions.f64"
CHECKSUM = "sha256"
CHECKSUM_BLOCK = 8 << 20  # bytes hashed per task: threads hash blocks in parallel (hashlib drops the GIL)


Advice = Callable[[], str]
"""The fix every cache error names (a preprocess.py command); built only when an error is raised."""


class CacheError(UserError):
    """A cache that cannot be trusted (damaged, edited, stale or changed while read): re-run preprocess."""


@dataclass(frozen=True)
class ClipEntry:
    """One clip version in the cache: where its features lie and where it came from."""

    name: str
    shard: int
    offset: int  # first row in the shard
    length: int  # frames
    source: str  # the motion file it was read from
    augmentation: str  # none, speed<s>, mirror, mirror+speed<s> (training.clips.augmentation_names)
    val: bool  # a validation clip (never augmented, never sampled for training)
    motion_offset: int = -1  # first row in val_motions.f64 (validation clips only)


CLIP_FIELDS: dict[str, type] = typing.get_type_hints(ClipEntry)


def file_checksum(fd: int, size: int, name: str | Path = "") -> str:
    """``sha256:<hex>``: sha256 over the sha256 of each :data:`CHECKSUM_BLOCK` bytes of the first ``size``
    bytes of ``fd``. Blocks are hashed on threads, so verifying a large cache is bounded by the disk (or
    ~1 GB/s per core from the page cache), not by one core."""

    def block(offset: int) -> bytes:
        want = min(CHECKSUM_BLOCK, size - offset)
        data = os.pread(fd, want, offset)
        if len(data) != want:
            raise CacheError(f"{name}: the file ended at byte {offset + len(data)} while being checksummed")
        return hashlib.sha256(data).digest()

    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        digests = list(pool.map(block, range(0, size, CHECKSUM_BLOCK)))
    return f"{CHECKSUM}:{hashlib.sha256(b''.join(digests)).hexdigest()}"


class CheckedFile:
    """A cache file opened for reading rows of ``row_bytes``; its size is checked against the index at once
    and on every short read; :meth:`verify` compares its checksum. The descriptor stays open, so the file
    verified is the file read even if a new one is renamed over its path meanwhile."""

    def __init__(self, path: Path, rows: int, row_bytes: int, remake: Advice) -> None:
        self.path, self.rows, self.row_bytes, self.remake = path, rows, row_bytes, remake
        self._file = path.open("rb", buffering=0)
        self.fd = self._file.fileno()
        size = os.fstat(self.fd).st_size
        if size != rows * row_bytes:
            self.close()
            raise CacheError(
                f"{path}: {size} bytes, but index.json says {rows} rows of {row_bytes} bytes "
                f"({rows * row_bytes} bytes): the file was truncated or changed; {remake()}"
            )

    def verify(self, expected: str) -> None:
        """Raise naming the file when its bytes are not those preprocess.py wrote."""
        found = file_checksum(self.fd, self.rows * self.row_bytes, self.path)
        if found != expected:
            raise CacheError(
                f"{self.path}: checksum mismatch (index.json: {expected}, file: {found}): its bytes changed "
                f"after preprocess.py wrote it; {self.remake()}"
            )

    def read_into(self, row: int, out: np.ndarray) -> None:
        """Fill ``out`` (C-contiguous) with the bytes from ``row`` on; raise if the file is shorter now."""
        start = row * self.row_bytes
        done = os.preadv(self.fd, [out], start)  # one call fills it, except at the end of a shrunk file
        while done < out.nbytes:
            got = os.preadv(self.fd, [memoryview(out).cast("B")[done:]], start + done)
            if got == 0:
                size = os.fstat(self.fd).st_size
                raise CacheError(
                    f"{self.path} shrank to {size} bytes while this process read it (index.json: "
                    f"{self.rows * self.row_bytes}; row {row + done // self.row_bytes} is gone); nothing was "
                    f"trained on the missing rows; {self.remake()}, then continue the run with --resume"
                )
            done += got

    def close(self) -> None:
        self._file.close()


def validate_index(index: Any, folder: Path, remake: Advice) -> None:
    """Raise naming the first field of ``index.json`` that is malformed or points outside the cache.

    Shard names must be plain names of files in ``folder`` (not ``../x`` nor a link out of it); every
    clip's rows must lie inside its shard, and every validation clip's inside ``val_motions.f64``.
    """
    where = folder / "index.json"

    def fail(field: str, value: Any, rule: str) -> None:
        raise CacheError(f"{where}: {field} = {value!r}: {rule}; the index was edited or damaged; {remake()}")

    def need(value: Any, kind: type, field: str, low: float = -math.inf, high: float = math.inf) -> None:
        if type(value) is not kind or (kind is int and not low <= value <= high):
            fail(field, value, f"must be {kind.__name__}" + (f" in [{low}, {high}]" if kind is int else ""))

    if not isinstance(index, dict):
        fail("(top level)", type(index).__name__, "must be an object")
    for key, kind in (("layout", dict), ("settings", dict), ("shards", list), ("clips", list)):
        need(index.get(key), kind, key)
    need(index.get("val_motions"), dict, "val_motions")
    need(index["layout"].get("dim"), int, "layout.dim", 1)
    fps = index.get("fps")
    if not isinstance(fps, int | float) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
        fail("fps", fps, "must be a positive number")
    if not isinstance(index.get("joint_names"), list) or not all(
        isinstance(n, str) for n in index["joint_names"]
    ):
        fail("joint_names", index.get("joint_names"), "must be a list of names")
    if not index["shards"]:
        fail("shards", [], "must list at least one shard")
    frames = []
    for i, shard in enumerate(index["shards"]):
        need(shard, dict, f"shards[{i}]")
        name = shard.get("file")
        need(name, str, f"shards[{i}].file")
        if name in ("", ".", "..") or Path(name).name != name or "\\" in name:
            fail(f"shards[{i}].file", name, "must be a plain file name inside the cache folder")
        if (folder / name).resolve().parent != folder.resolve():
            fail(f"shards[{i}].file", name, f"resolves to {(folder / name).resolve()}, outside {folder}")
        need(shard.get("frames"), int, f"shards[{i}].frames", 0)
        need(shard.get("checksum"), str, f"shards[{i}].checksum")
        frames.append(shard["frames"])
    need(index["val_motions"].get("checksum"), str, "val_motions.checksum")
    need(index["val_motions"].get("rows"), int, "val_motions.rows", 0)
    val_rows = index["val_motions"]["rows"]
    for i, clip in enumerate(index["clips"]):
        need(clip, dict, f"clips[{i}]")
        if set(clip) != set(CLIP_FIELDS):
            fail(f"clips[{i}]", sorted(clip), f"must have exactly the fields {sorted(CLIP_FIELDS)}")
        for key, kind in CLIP_FIELDS.items():
            need(clip[key], kind, f"clips[{i}].{key}")
        need(clip["shard"], int, f"clips[{i}].shard", 0, len(frames) - 1)
        rows = frames[clip["shard"]]
        need(clip["length"], int, f"clips[{i}].length", 1, rows)
        need(clip["offset"], int, f"clips[{i}].offset", 0, rows - clip["length"])
        if clip["val"]:
            need(clip["motion_offset"], int, f"clips[{i}].motion_offset", 0, val_rows - clip["length"])
    if not any(not clip["val"] for clip in index["clips"]):
        fail("clips", f"{len(index['clips'])} entries", "must hold at least one training clip")


def open_checked(
    folder: Path, index: dict[str, Any], remake: Advice, verify: bool
) -> tuple[list[CheckedFile], CheckedFile]:
    """The shards and ``val_motions.f64`` of a validated index, opened (and with ``verify``, checksummed)."""
    dim = index["layout"]["dim"]
    width = 7 + len(index["joint_names"])
    opened: list[CheckedFile] = []
    specs: list[tuple[str, int, int, str]] = [
        (s["file"], s["frames"], 4 * dim, s["checksum"]) for s in index["shards"]
    ]
    specs.append((VAL_MOTIONS, index["val_motions"]["rows"], 8 * width, index["val_motions"]["checksum"]))
    try:
        for name, rows, row_bytes, checksum in specs:
            if not (folder / name).is_file():
                raise CacheError(f"{folder / name}: missing (index.json lists it); {remake()}")
            opened.append(CheckedFile(folder / name, rows, row_bytes, remake))
            if verify:
                opened[-1].verify(checksum)
    except BaseException:
        for file in opened:
            file.close()
        raise
    return opened[:-1], opened[-1]
