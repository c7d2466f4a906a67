"""Property-based fuzzing of the readers (hypothesis): every input is either read into plausible clips or
refused with a documented :class:`MotionFileError` that names the file. Nothing else may happen.

Used by ``tests/test_fuzz_readers.py`` (a short, derandomized run in CI) and by the ``fuzz`` section of
``scripts/benchmark.py``, which runs ``python -m motion_vqvae.data.fuzzing --seconds N`` in a subprocess
under an address-space limit, so an allocation bomb fails the run instead of the machine. hypothesis is a
development dependency: import this module only from tests and benchmarks.

Targets, each fed mutations of small valid files made from the bundled sample motion (never real data):
``csv`` (cells replaced by any float, bytes flipped), ``npy`` (cells and header bytes), ``pkl`` (motion
dicts of arbitrary values, pickled with every protocol, and byte mutations of pickle and joblib files),
``meta`` (arbitrary JSON for ``fps`` and ``dof_names``), ``unpickler`` (opcode soup fed to ``safe_load``).
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import resource
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motion_vqvae.data.errors import MotionFileError
from motion_vqvae.data.joint_names import G1_29DOF_JOINTS
from motion_vqvae.data.loading import load_motions, sample_motion_path
from motion_vqvae.data.plausibility import (
    FPS_RANGE,
    JOINT_LIMIT_TOLERANCE,
    MAX_ROOT_DISTANCE,
    ROOT_HEIGHT_RANGE,
    joint_limits,
)
from motion_vqvae.data.safe_pickle import safe_load
from motion_vqvae.errors import InvalidValue

TARGETS = ("csv", "npy", "pkl", "meta", "unpickler")
SLOW_SECONDS = 5.0  # one input taking longer than this counts as a hang
_INTERESTING = (
    struct.pack("<q", -1),
    struct.pack("<I", 2**31 - 1),
    struct.pack("<Q", 6 * 10**9),
    b"nan",
    b"inf",
    b"1e308",
    b"-1e30",
    b"9" * 24,
    b",",
    b"\n",
    b"(1000000000, 38)",
)


def sample_table(rows: int = 40) -> np.ndarray:
    """The first rows of the bundled sample NPY: [time, root_pos, root_quat wxyz, 29 dof, flag]."""
    return np.load(sample_motion_path())[:rows].copy()


def sample_clip(rows: int = 40) -> dict[str, Any]:
    """The sample as a PHC/ASAP motion dict (xyzw quaternion)."""
    table = sample_table(rows)
    return {
        "root_trans_offset": table[:, 1:4],
        "root_rot": table[:, [5, 6, 7, 4]],
        "dof": table[:, 8:-1],
        "fps": 30,
    }


def csv_text(table: np.ndarray) -> bytes:
    """A headerless CSV (xyzw quaternion) of an NPY-layout table."""
    body = np.concatenate([table[:, 1:4], table[:, [5, 6, 7, 4]], table[:, 8:-1]], axis=1)
    buffer = io.StringIO()
    np.savetxt(buffer, body, delimiter=",", fmt="%.9g")
    return buffer.getvalue().encode()


def npy_bytes(table: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, table)
    return buffer.getvalue()


def meta_text(fps: Any = 30, names: Any = G1_29DOF_JOINTS) -> bytes:
    return json.dumps({"fps": fps, "dof_names": list(names) if isinstance(names, tuple) else names}).encode()


@dataclass
class FuzzStats:
    """What a run saw: executions, how inputs ended, and each distinct failure with one example."""

    executions: int = 0
    accepted: int = 0
    refused: int = 0
    slowest_s: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)

    def fail(self, kind: str, detail: str) -> None:
        self.failures.setdefault(kind, detail[:500])


def _apply(base: bytes, ops: list[tuple]) -> bytes:
    data = bytearray(base)
    for op in ops:
        if op[0] == "flip" and data:
            data[op[1] % len(data)] ^= op[2]
        elif op[0] == "truncate":
            del data[op[1] % (len(data) + 1) :]
        elif op[0] == "insert":
            data[op[1] % (len(data) + 1) : op[1] % (len(data) + 1)] = op[2]
        elif op[0] == "overwrite" and data:
            start = op[1] % len(data)
            data[start : start + len(op[2])] = op[2]
    return bytes(data)


def mutated(base: bytes) -> st.SearchStrategy[bytes]:
    """``base`` with one to four byte-level edits: flips, truncation, insertions, interesting values."""
    size = max(len(base), 1)
    op = st.one_of(
        st.tuples(st.just("flip"), st.integers(0, size - 1), st.integers(1, 255)),
        st.tuples(st.just("truncate"), st.integers(0, size)),
        st.tuples(st.just("insert"), st.integers(0, size), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("overwrite"), st.integers(0, size - 1), st.sampled_from(_INTERESTING)),
    )
    return st.lists(op, min_size=1, max_size=4).map(lambda ops: _apply(base, ops))


_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)


def _edited_table(table: np.ndarray) -> st.SearchStrategy[np.ndarray]:
    """``table`` with up to six cells set to any float (NaN, inf, 1e308, ...)."""
    cell = st.tuples(st.integers(0, table.shape[0] - 1), st.integers(0, table.shape[1] - 1), _ANY_FLOAT)

    def edit(cells: list[tuple[int, int, float]]) -> np.ndarray:
        out = table.copy()
        for row, col, value in cells:
            out[row, col] = value
        return out

    return st.lists(cell, min_size=1, max_size=6).map(edit)


def _filled(shape: tuple[int, ...], dtype: str, fill: float) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf cast to int: any value will do
        return np.full(shape, fill).astype(dtype)


_JSON = st.recursive(
    st.none() | st.booleans() | _ANY_FLOAT | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)
_LEAF = st.one_of(
    st.none(),
    st.integers(),
    _ANY_FLOAT,
    st.text(max_size=6),
    st.binary(max_size=8),
    st.builds(
        lambda shape, dtype, fill: _filled(shape, dtype, fill),
        st.lists(st.integers(0, 5), max_size=3).map(tuple),
        st.sampled_from(["f8", "f4", "i4", "u1", "?", ">f8"]),
        _ANY_FLOAT,
    ),
)
_VALUE = st.recursive(_LEAF, lambda inner: st.lists(inner, max_size=4), max_leaves=10)


def _motion_dicts(clip: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """The sample motion dict with some values replaced by arbitrary ones, pickled (protocol 0-5)."""

    def build(replaced: dict[str, Any], protocol: int, nested: bool) -> bytes:
        obj: Any = {**clip, **replaced}
        return pickle.dumps({"clip": obj} if nested else obj, protocol=protocol)

    keys = st.sampled_from(["root_trans_offset", "root_rot", "dof", "fps", "extra"])
    return st.builds(build, st.dictionaries(keys, _VALUE, max_size=3), st.integers(0, 5), st.booleans())


_OPCODES = [bytes([op.code.encode("latin1")[0]]) for op in __import__("pickletools").opcodes]
_GLOBALS = [  # what the allow-list admits, so the soup reaches the guarded callables and their states
    b"cnumpy\ndtype\n",
    b"cnumpy\nndarray\n",
    b"cnumpy.core.multiarray\n_reconstruct\n",
    b"cnumpy._core.multiarray\nscalar\n",
    b"cnumpy._core.numeric\n_frombuffer\n",
    b"c__builtin__\nbytearray\n",
    b"c__builtin__\nbytes\n",
    b"cbuiltins\nset\n",
    b"c_codecs\nencode\n",
    b"ccollections\nOrderedDict\n",
    b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n",
    b"X\x02\x00\x00\x00f8",
    b"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t",
]


def _opcode_soup() -> st.SearchStrategy[bytes]:
    """Pickle-looking byte strings: a PROTO header, then opcodes interleaved with short arguments."""
    piece = st.one_of(
        st.sampled_from(_OPCODES),
        st.binary(max_size=9),
        st.sampled_from(_INTERESTING),
        st.sampled_from(_GLOBALS),
    )
    return st.builds(
        lambda proto, parts: b"\x80" + bytes([proto]) + b"".join(parts) + b".",
        st.integers(0, 5),
        st.lists(piece, max_size=30),
    )


def _joblib_files(clip: dict[str, Any]) -> list[bytes]:
    """The clip as joblib writes it, plain and zlib-compressed (joblib is a dev dependency too)."""
    import joblib

    files = []
    for compress in (0, 3):
        buffer = io.BytesIO()
        joblib.dump({"clip": clip}, buffer, compress=compress)
        files.append(buffer.getvalue())
    return files


class Target:
    """One fuzz target: where inputs are written, how they are drawn and read, and the invariants."""

    def __init__(self, name: str, workdir: Path, stats: FuzzStats) -> None:
        self.name, self.stats = name, stats
        self.folder = workdir / name
        self.folder.mkdir(parents=True, exist_ok=True)
        table = sample_table()
        self.limits = joint_limits(G1_29DOF_JOINTS, None)
        if name == "csv":
            (self.folder / "meta.json").write_bytes(meta_text())
            self.file = self.folder / "clip.csv"
            base = csv_text(table)
            self.strategy = mutated(base) | _edited_table(table).map(csv_text)
        elif name == "npy":
            self.file = self.folder / "clip.npy"
            self.strategy = mutated(npy_bytes(table)) | _edited_table(table).map(npy_bytes)
        elif name == "pkl":
            self.file = self.folder / "clip.pkl"
            clip = sample_clip()
            bases = [pickle.dumps({"clip": clip}, protocol=2), pickle.dumps(clip, 5), *_joblib_files(clip)]
            self.strategy = st.one_of(_motion_dicts(clip), *(mutated(b) for b in bases))
        elif name == "meta":
            (self.folder / "clip.csv").write_bytes(csv_text(table))
            self.file = self.folder / "meta.json"
            drawn = st.builds(meta_text, _JSON, _JSON | st.just(G1_29DOF_JOINTS))
            self.strategy = drawn | mutated(meta_text())
        elif name == "unpickler":
            self.file = self.folder / "soup.pkl"
            self.strategy = _opcode_soup() | mutated(pickle.dumps(sample_clip(4), 2))
        else:
            raise InvalidValue(f"unknown fuzz target {name!r}; choose from {TARGETS}")

    def read(self) -> list:
        if self.name == "unpickler":
            safe_load(self.file)
            return []
        return load_motions(self.file.parent if self.name == "meta" else self.file, jump_threshold=None)

    def check(self, data: bytes) -> None:
        """Write ``data``, read it, record any outcome but plausible clips or a documented error."""
        self.file.write_bytes(data)
        self.stats.executions += 1
        start = time.perf_counter()
        try:
            motions = self.read()
        except MotionFileError as err:
            self.stats.refused += 1
            if str(self.file.parent if self.name == "meta" else self.file) not in str(err):
                self.stats.fail("message without the file name", f"{data[:80]!r}: {err}")
        except Exception as err:  # noqa: BLE001 - any other type is exactly what the fuzzer looks for
            self.stats.fail(f"undocumented {type(err).__name__}", f"{data[:80]!r}: {err}")
        else:
            self.stats.accepted += 1
            for motion in motions:
                self._check_plausible(motion, data)
        elapsed = time.perf_counter() - start
        self.stats.slowest_s = max(self.stats.slowest_s, elapsed)
        if elapsed > SLOW_SECONDS:
            self.stats.fail("slow input (hang)", f"{elapsed:.1f} s on {data[:80]!r}")

    def _check_plausible(self, motion: Any, data: bytes) -> None:
        arrays = (motion.root_pos, motion.root_quat, motion.dof)
        low, high = ROOT_HEIGHT_RANGE
        problems = [
            not all(np.isfinite(a).all() for a in arrays),
            not FPS_RANGE[0] <= motion.fps <= FPS_RANGE[1],
            bool((np.abs(motion.root_pos[:, :2]) > MAX_ROOT_DISTANCE).any()),
            bool(((motion.root_pos[:, 2] < low) | (motion.root_pos[:, 2] > high)).any()),
        ]
        if self.limits is not None and motion.joint_names == list(G1_29DOF_JOINTS):
            lower, upper = self.limits
            excess = np.maximum(motion.dof - upper, lower - motion.dof)
            problems.append(bool((excess > JOINT_LIMIT_TOLERANCE).any()))
        if any(problems):
            self.stats.fail("accepted an implausible clip", f"{data[:80]!r}: problems {problems}")


def run_target(
    name: str, workdir: Path, stats: FuzzStats, *, max_examples: int, seed: int | None, derandomize: bool
) -> None:
    """Run ``max_examples`` inputs of one target (fixed order when ``derandomize``)."""
    target = Target(name, workdir, stats)
    config = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
    )
    test: Callable[[], None] = config(given(target.strategy)(target.check))
    if seed is not None and not derandomize:
        test._hypothesis_internal_use_seed = seed  # what @hypothesis.seed sets
    test()


def fuzz_for(seconds: float, workdir: Path, seed: int = 0, batch: int = 200) -> dict[str, Any]:
    """Cycle through the targets in batches of ``batch`` inputs (new seed each) until ``seconds`` pass."""
    per_target = {name: FuzzStats() for name in TARGETS}
    start, round_ = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for name in TARGETS:
            run_target(
                name, workdir, per_target[name], max_examples=batch, seed=seed + round_, derandomize=False
            )
        round_ += 1
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "executions": sum(s.executions for s in per_target.values()),
        "failures": sum(len(s.failures) for s in per_target.values()),
        "targets": {name: vars(s) for name, s in per_target.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz the motion readers for a while; print JSON figures.")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-limit-gb", type=float, default=2.0, help="RLIMIT_AS for this process")
    args = parser.parse_args(argv)
    limit = int(args.memory_limit_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with tempfile.TemporaryDirectory(prefix="motion_fuzz_") as workdir:
        result = fuzz_for(args.seconds, Path(workdir), seed=args.seed)
    result["memory_limit_gb"] = args.memory_limit_gb
    print(json.dumps(result, indent=2))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
