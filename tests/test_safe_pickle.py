"""The restricted unpickler: real ASAP joblib files load exactly, code-running pickles are refused."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import joblib
import numpy as np
import pytest

from motion_vqvae.data.errors import MotionSizeError
from motion_vqvae.data.safe_pickle import UnsafePickleError, safe_load


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_asap_joblib_files_match_joblib(asap_dir: Path) -> None:
    files = sorted(asap_dir.glob("*.pkl"))
    assert len(files) == 52
    for path in files[:5]:
        ours, theirs = safe_load(path), joblib.load(path)
        assert ours.keys() == theirs.keys()
        for name, clip in theirs.items():
            for key, value in clip.items():
                assert type(ours[name][key]) is type(value)
                np.testing.assert_array_equal(ours[name][key], value)
                assert getattr(ours[name][key], "dtype", None) == getattr(value, "dtype", None)


def test_plain_pickle_of_numpy_and_containers(tmp_path: Path) -> None:
    obj = {"dof": np.arange(6.0).reshape(2, 3), "fps": np.float32(30), "names": ["a", "b"], "s": {1, 2}}
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        back = safe_load(path)
        np.testing.assert_array_equal(back["dof"], obj["dof"])
        assert back["fps"] == np.float32(30) and back["names"] == ["a", "b"] and back["s"] == {1, 2}


def test_compressed_and_fortran_joblib(tmp_path: Path) -> None:
    obj = {"a": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "b": np.arange(5, dtype=">i4")}
    for compress in (0, 3, ("gzip", 3)):
        path = tmp_path / "x.joblib"
        joblib.dump(obj, path, compress=compress)
        back = safe_load(path)
        np.testing.assert_array_equal(back["a"], obj["a"])
        np.testing.assert_array_equal(back["b"], obj["b"])


def test_os_system_pickle_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"dof": _Exploit(target)}))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*'(posix|os|nt)\.system'"):
        safe_load(path)
    assert not target.exists()


def test_crafted_joblib_file_is_refused(tmp_path: Path) -> None:
    """A joblib-style file: a real array wrapper followed by a malicious object and raw bytes."""
    target = tmp_path / "pwned_joblib"
    path = tmp_path / "evil.joblib"
    joblib.dump({"dof": np.zeros((2, 3)), "evil": _Exploit(target)}, path)
    with pytest.raises(UnsafePickleError, match=r"evil\.joblib.*system"):
        safe_load(path)
    assert not target.exists()


def test_joblib_header_with_object_dtype_or_huge_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.joblib"
    joblib.dump({"x": np.array([{"a": 1}], dtype=object)}, path)
    with pytest.raises(UnsafePickleError, match="dtype"):
        safe_load(path)
    # Patch the shape of a real file to claim far more bytes than the file holds.
    buf = io.BytesIO()
    joblib.dump(np.zeros(4), buf)
    data = buf.getvalue().replace(b"K\x04\x85", b"J" + struct.pack("<i", 10**9) + b"\x85", 1)
    big = tmp_path / "big.joblib"
    big.write_bytes(data)
    with pytest.raises(MotionSizeError, match="truncated"):
        safe_load(big)


def test_garbage_is_a_clear_value_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pkl"
    path.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(ValueError, match="garbage.pkl"):
        safe_load(path)
