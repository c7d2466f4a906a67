"""The hostile-file corpus: every crafted or broken file of issue 12, made from the bundled sample motion.

``python tests/_hostile_corpus.py`` rewrites ``tests/fuzz_corpus/`` (files plus ``cases.json``: how each case
is loaded and what must happen). ``tests/test_hostile_files.py`` checks that the committed corpus equals
what this module builds, and runs every case in a subprocess under an address-space limit
(``python tests/_hostile_corpus.py --run DIR --limit-gb 2``), so a memory bomb fails the test, not the
machine. Nothing here is copied from ../shared: all files derive from the procedural sample.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import resource
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.data.fuzzing import csv_text, meta_text, npy_bytes, sample_clip, sample_table
from motion_vqvae.data.joint_names import G1_23DOF_JOINTS, G1_29DOF_JOINTS

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
KNEE = 8 + 3  # left_knee_joint column in the NPY layout


def _p2(*parts: bytes) -> bytes:
    return b"\x80\x02" + b"".join(parts) + b"."


def _long(n: int) -> bytes:
    """LONG1 opcode for ``n``."""
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _csv_table(edit: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    table = sample_table()
    if edit is not None:
        edit(table)
    return table


def _set(col: int, value: float, rows: slice = slice(10, 12)) -> Callable[[np.ndarray], None]:
    def edit(table: np.ndarray) -> None:
        table[rows, col] = value

    return edit


def _scale_dof(factor: float) -> Callable[[np.ndarray], None]:
    def edit(table: np.ndarray) -> None:
        table[:, 8:-1] *= factor

    return edit


def _joblib_zlib(truncate: bool) -> bytes:
    data = zlib.compress(pickle.dumps({"clip": sample_clip()}, protocol=4), 3)
    return data[: len(data) // 2] if truncate else data


def _zlib_bomb() -> bytes:
    """About 100 KB of zlib stream that expands to 100 MB of zeros (the cap is 64 MiB for such a file)."""
    compressor = zlib.compressobj(9)
    chunk = bytes(2**20)
    return b"".join([compressor.compress(chunk) for _ in range(100)] + [compressor.flush()])


def _shared_references() -> bytes:
    """A few KB whose nested lists reach 2*10^8 floats when shared references are followed."""
    a = [0.0] * 200
    b = [a] * 100
    c = [b] * 100
    return pickle.dumps({**sample_clip(), "dof": [c] * 100}, protocol=4)


def _cut_inside_float() -> bytes:
    data = pickle.dumps({"fps": 30.5, "x": 1.25}, protocol=4)
    return data[: data.index(b"G") + 5]


def _os_system() -> bytes:
    return _p2(b"cposix\nsystem\n", b"X\x04\x00\x00\x00true", b"\x85R")


class _Exploit:
    """Pickles as a call of ``os.system('true')``: what a malicious motion file would do."""

    def __reduce__(self) -> tuple:
        return (os.system, ("true",))


def _joblib_os_system() -> bytes:
    """A real joblib file (array wrapper followed by raw bytes) with an ``os.system`` call after the array."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump({"dof": np.zeros((2, 3)), "evil": _Exploit()}, buffer)
    return buffer.getvalue()


def _npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, table=sample_table())
    return buffer.getvalue()


def _npy_header_bomb() -> bytes:
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 38)))
    header["shape"] = (10**9, 38)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + bytes(800)


def _all_transitions() -> bytes:
    table = sample_table()
    table[:, -1] = 1.0
    return npy_bytes(table)


def _huge_fps() -> bytes:
    table = sample_table()
    table[:, 0] = np.arange(len(table)) * 1e-300
    return npy_bytes(table)


def _fps_pickle(fps: Any) -> bytes:
    return pickle.dumps({**sample_clip(), "fps": fps}, protocol=4)


def _ragged_dof() -> bytes:
    return pickle.dumps({**sample_clip(4), "dof": [[0.0] * 29, [0.0] * 28]}, protocol=4)


def _mixed_keys() -> bytes:
    return pickle.dumps({1: "one", "b": [2.0]}, protocol=4)


def _xyzw_csv() -> bytes:
    """The sample (facing about -83 degrees) written with xyzw quaternions; the case reads it as wxyz."""
    return csv_text(sample_table())


# name -> (files to write {relative path: bytes}, load_motions keyword arguments, expected type, regex)
Case = tuple[dict[str, bytes], dict[str, Any], str, str]
_DTYPE_SEGFAULT = _p2(
    b"cnumpy\ndtype\n",
    b"X\x02\x00\x00\x00f8K\x00K\x01\x87R",
    b"(K\x03X\x01\x00\x00\x00<NJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb",
)


def cases() -> dict[str, Case]:
    meta = {"meta.json": meta_text()}
    return {
        "dtype_setstate_segfault": ({"x.pkl": _DTYPE_SEGFAULT}, {}, "UnsafePickleError", "dtype state"),
        "bytearray8_claims_6e9": (
            {"x.pkl": b"\x80\x05\x96" + struct.pack("<Q", 6 * 10**9) + b"."},
            {},
            "MotionSizeError",
            "BYTEARRAY8",
        ),
        "bytearray_reduce_8e9": (
            {"x.pkl": _p2(b"c__builtin__\nbytearray\n", _long(8 * 10**9), b"\x85R")},
            {},
            "MotionSizeError",
            "bytearray",
        ),
        "bytes_reduce_1e12": (
            {"x.pkl": _p2(b"c__builtin__\nbytes\n", _long(10**12), b"\x85R")},
            {},
            "MotionSizeError",
            "bytes",
        ),
        "reconstruct_1e13": (
            {
                "x.pkl": _p2(
                    b"cnumpy.core.multiarray\n_reconstruct\n",
                    b"cnumpy\nndarray\n",
                    _long(10**13),
                    b"\x85",
                    b"C\x01b\x87R",
                )
            },
            {},
            "MotionSizeError",
            "empty array of shape",
        ),
        "zlib_bomb": ({"x.pkl": _zlib_bomb()}, {}, "MotionSizeError", "decompression bomb"),
        "shared_references": ({"x.pkl": _shared_references()}, {}, "MotionSizeError", "shared references"),
        "npy_header_claims_1e9_rows": ({"x.npy": _npy_header_bomb()}, {}, "MotionSizeError", "header claims"),
        "joint_50_rad": (
            {**meta, "x.csv": csv_text(_csv_table(_set(KNEE, 50.0)))},
            {},
            "ImplausibleMotionError",
            "left_knee_joint' is 50 rad at frame 10",
        ),
        "joints_times_1e6": (
            {**meta, "x.csv": csv_text(_csv_table(_scale_dof(1e6)))},
            {},
            "ImplausibleMotionError",
            "outside its limits",
        ),
        "joint_1e308": (
            {**meta, "x.csv": csv_text(_csv_table(_set(KNEE, 1e308)))},
            {},
            "ImplausibleMotionError",
            "frame 10",
        ),
        "root_1e30_m": (
            {**meta, "x.csv": csv_text(_csv_table(_set(1, 1e30)))},
            {},
            "ImplausibleMotionError",
            "root position",
        ),
        "fps_1e300": ({"x.npy": _huge_fps()}, {}, "ImplausibleMotionError", "fps 1e\\+300"),
        "csv_23_joints_meta_29": (
            {**meta, "x.csv": csv_text(np.delete(sample_table(), np.s_[8 + 23 : 8 + 29], axis=1))},
            {},
            "MotionFileError",
            "23 joint columns, but .*lists 29",
        ),
        "meta_28_names_29_columns": (
            {"meta.json": meta_text(30, G1_29DOF_JOINTS[:28]), "x.csv": csv_text(sample_table())},
            {},
            "MotionFileError",
            "29 joint columns, but .*lists 28",
        ),
        "xyzw_read_as_wxyz": (
            {**meta, "x.csv": _xyzw_csv()},
            {"quat_order": "wxyz"},
            "ImplausibleMotionError",
            "quat_order='xyzw'",
        ),
        "npy_all_transitions": ({"x.npy": _all_transitions()}, {}, "MotionFileError", "holds no clip"),
        "duplicate_clip_names": (
            {
                "a/meta.json": meta_text(),
                "a/clip.csv": csv_text(sample_table()),
                "b/meta.json": meta_text(),
                "b/clip.csv": csv_text(sample_table()),
            },
            {},
            "ok",
            "clip,b/clip",
        ),
        "npy_empty": ({"x.npy": b""}, {}, "MotionFileError", "not an .npy file"),
        "npz_named_npy": ({"x.npy": _npz()}, {}, "MotionFileError", "npz archive"),
        "joblib_zlib_truncated": (
            {"x.pkl": _joblib_zlib(truncate=True)},
            {},
            "MotionFileError",
            "truncated zlib",
        ),
        "gzip_truncated": (
            {"x.pkl": gzip.compress(_fps_pickle(30), mtime=0)[:-40]},
            {},
            "MotionFileError",
            "truncated gzip",
        ),
        "pickle_cut_inside_float": ({"x.pkl": _cut_inside_float()}, {}, "MotionFileError", "not a readable"),
        "meta_fps_inf": (
            {"meta.json": b'{"fps": Infinity}', "x.csv": csv_text(sample_table())},
            {},
            "MotionFileError",
            "'fps' must be one positive finite number",
        ),
        "meta_fps_list": (
            {"meta.json": b'{"fps": [30]}', "x.csv": csv_text(sample_table())},
            {},
            "MotionFileError",
            "'fps' must be one positive finite number",
        ),
        "pkl_fps_list": ({"x.pkl": _fps_pickle([30])}, {}, "MotionFileError", "'fps' must be one"),
        "pkl_fps_inf": ({"x.pkl": _fps_pickle(float("inf"))}, {}, "MotionFileError", "'fps' must be one"),
        "ragged_dof": ({"x.pkl": _ragged_dof()}, {}, "MotionFileError", "not a rectangular table"),
        "mixed_type_keys": ({"x.pkl": _mixed_keys()}, {}, "MotionFileError", "expected one motion dict"),
        "os_system_pickle": ({"x.pkl": _os_system()}, {}, "UnsafePickleError", "system"),
        "joblib_style_os_system": ({"x.pkl": _joblib_os_system()}, {}, "UnsafePickleError", "system"),
        "valid_23dof_pickle": (
            {
                "x.pkl": pickle.dumps(
                    {**sample_clip(), "dof": sample_table()[:, 8:-1][:, _g1_23()]}, protocol=2
                )
            },
            {},
            "ok",
            "x",
        ),
    }


def _g1_23() -> list[int]:
    return [G1_29DOF_JOINTS.index(n) for n in G1_23DOF_JOINTS]


def write_corpus(folder: Path) -> dict[str, Any]:
    """Write every case under ``folder/<case>/`` and ``folder/cases.json``; return the manifest."""
    manifest = {}
    for name, (files, kwargs, expect, pattern) in cases().items():
        for relative, data in files.items():
            path = folder / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        manifest[name] = {"kwargs": kwargs, "expect": expect, "match": pattern}
    (folder / "cases.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def run_corpus(folder: Path) -> dict[str, dict[str, str]]:
    """Load every case; the outcome per case: the exception type and message, or ``ok`` and clip names."""
    from motion_vqvae.data import load_motions

    results = {}
    for name, case in json.loads((folder / "cases.json").read_text()).items():
        print(f"# {name}", file=sys.stderr, flush=True)  # the last line names the case if the process dies
        try:
            motions = load_motions(folder / name, jump_threshold=None, **case["kwargs"])
        except Exception as err:  # noqa: BLE001 - the outcome is what is being recorded
            results[name] = {"type": type(err).__name__, "message": str(err), "mro": _mro(err)}
        else:
            results[name] = {"type": "ok", "message": ",".join(m.name for m in motions), "mro": ["ok"]}
    return results


def _mro(err: BaseException) -> list[str]:
    return [k.__name__ for k in type(err).__mro__]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--run":
        limit = int(float(sys.argv[4]) * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        print(json.dumps(run_corpus(Path(sys.argv[2]))))
    else:
        write_corpus(CORPUS)
        print(f"wrote {CORPUS}")
