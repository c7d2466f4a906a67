"""Hostile and broken motion files: no crash, no memory bomb, no silent garbage, one family of errors.

The corpus in tests/fuzz_corpus/ (built by tests/_hostile_corpus.py from the bundled sample) holds every
case of issue 12; it runs in a subprocess limited to 2 GB of address space, so a reader that allocates what
a crafted header claims fails this test instead of exhausting the machine, and a segfault is a failure too.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _hostile_corpus import CORPUS, write_corpus

from motion_vqvae.data import (
    PLAUSIBILITY_CHECKS,
    ImplausibleMotionError,
    MotionFileError,
    load_motions,
    safe_load,
)

REPO = Path(__file__).resolve().parents[1]
MEMORY_LIMIT_GB = 2


def test_committed_corpus_is_what_the_builder_makes(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path)
    built = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(CORPUS) for p in CORPUS.rglob("*") if p.is_file())
    assert built == committed, "run python tests/_hostile_corpus.py to refresh tests/fuzz_corpus"
    for relative in built:
        assert (tmp_path / relative).read_bytes() == (CORPUS / relative).read_bytes(), relative
    assert len(manifest) >= 30


def test_every_corpus_case_ends_as_expected_under_a_memory_limit() -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "OMP_NUM_THREADS": "1"}
    env["OPENBLAS_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "_hostile_corpus.py"),
            "--run",
            str(CORPUS),
            "--limit-gb",
            str(MEMORY_LIMIT_GB),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    last_case = proc.stderr.strip().splitlines()[-1:] if proc.stderr else []
    assert proc.returncode == 0, (
        f"the corpus run died (rc {proc.returncode}) at {last_case}: {proc.stderr[-2000:]}"
    )
    results = json.loads(proc.stdout)
    manifest = json.loads((CORPUS / "cases.json").read_text())
    assert results.keys() == manifest.keys()
    wrong = {}
    for name, case in manifest.items():
        got = results[name]
        if case["expect"] not in got["mro"] or not re.search(case["match"], got["message"]):
            wrong[name] = (case["expect"], case["match"], got["type"], got["message"][:300])
        if got["type"] != "ok":
            # Every refusal is one of the documented types and names the file it refuses.
            assert "MotionFileError" in got["mro"], (name, got)
            assert f"fuzz_corpus/{name}/" in got["message"], (name, got["message"])
    assert not wrong, wrong


def test_relax_turns_a_check_into_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    case = CORPUS / "joint_50_rad"
    with pytest.raises(ImplausibleMotionError) as info:
        load_motions(case)
    err = info.value
    assert (err.clip, err.row, err.column) == ("x", 10, "left_knee_joint") and err.file.endswith("x.csv")
    with caplog.at_level(logging.WARNING):
        motion = load_motions(case, relax=("joint_limits",))[0]
    assert motion.dof[10, 3] == 50.0
    assert "relaxed" in caplog.text and "left_knee_joint" in caplog.text
    with pytest.raises(ValueError, match="relax=\\['knees'\\] names no check"):
        load_motions(case, relax=("knees",))
    assert set(PLAUSIBILITY_CHECKS) == {"joint_limits", "root_position", "root_speed", "fps", "tilt"}


def test_dtype_pickles_keep_their_byte_order_without_touching_numpy(tmp_path: Path) -> None:
    path = tmp_path / "dtypes.pkl"
    path.write_bytes(pickle.dumps({"a": np.arange(3, dtype=">f8"), "d": np.dtype(">i4")}, protocol=2))
    back = safe_load(path)
    assert back["a"].dtype == pickle.loads(path.read_bytes())["a"].dtype and back["d"] == np.dtype(">i4")
    np.testing.assert_array_equal(back["a"], [0.0, 1.0, 2.0])
    assert np.dtype("f8").byteorder == "=" and np.dtype("i4").byteorder == "="


def test_every_real_clip_is_plausible_and_misread_quaternions_are_refused(
    shared_data: Path, tmp_path: Path
) -> None:
    assert len(load_motions(shared_data / "g1_moves", jump_threshold=None)) == 51
    assert len(load_motions(shared_data / "asap_g1_23dof", jump_threshold=None)) == 52
    assert len(load_motions(shared_data / "kimodo_g1", quat_order="wxyz", jump_threshold=None)) == 5
    # g1_moves' meta.json states xyzw (its "layout"), which beats any --quat-order: misread them from a
    # folder whose meta.json keeps the fps and joint names but leaves the order to the caller.
    meta = json.loads((shared_data / "g1_moves" / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "layout"}))
    for path in (shared_data / "g1_moves").glob("*.csv"):
        (tmp_path / path.name).symlink_to(path)
    refused = {"tilt": 0, "upside down": 0}
    for path in sorted(tmp_path.glob("*.csv")):  # xyzw data read as wxyz
        with pytest.raises(MotionFileError, match=rf"{re.escape(path.name)}.*quat_order='xyzw'") as info:
            load_motions(path, quat_order="wxyz", jump_threshold=None)
        refused["tilt" if isinstance(info.value, ImplausibleMotionError) else "upside down"] += 1
    assert refused == {"tilt": 42, "upside down": 9}
    accepted = 0
    for path in sorted((shared_data / "asap_g1_23dof").glob("*.pkl")):
        try:
            load_motions(path, quat_order="wxyz", jump_threshold=None)
        except MotionFileError:
            continue
        accepted += 1  # facing straight ahead, a misread root is a valid upright pose turned by 180 degrees
    assert accepted <= 3
