"""A user's mistakes end in one ``error:`` line and exit code 2, never a traceback (run as real processes).

The cases are those a new user met (missing path, empty folder, CSV without fps, missing checkpoint, YAML
syntax error, a glob) and the run-directory rules (existing run, resume of nothing, resume that would change
the model or the data, a directory in use). Everything runs on the bundled sample: no ../shared needed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from motion_vqvae.data import load_motions, sample_motion_path, save_csv, save_npy

REPO = Path(__file__).resolve().parents[1]
RUN_COPIES = 5
TINY = ["--set", "total_iter=2", "--set", "width=16", "--set", "num_threads=1", "--set", "eval_every=2"]


def _cases(tmp: Path) -> dict[str, list[str]]:
    run = str(tmp / "run")
    outs = (str(tmp / f"x{i}") for i in range(100))  # one --out each: the cases run at once
    runs = (str(tmp / f"run{i}") for i in range(RUN_COPIES))  # a trained run each: a resume takes its lock
    train = ["scripts/train_vqvae.py"]
    sample = str(sample_motion_path())
    return {
        "missing motion path": [*train, "--motion_file", str(tmp / "nowhere"), "--out", next(outs)],
        "empty folder": [*train, "--motion_file", str(tmp / "empty"), "--out", next(outs)],
        "csv without fps": [*train, "--motion_file", str(tmp / "csv"), "--out", next(outs)],
        "glob matching nothing": [*train, "--motion_file", str(tmp / "csv" / "*.npy"), "--out", next(outs)],
        "yaml syntax error": [*train, "--config", str(tmp / "bad.yaml"), "--out", next(outs)],
        "missing config": [*train, "--config", str(tmp / "none.yaml"), "--out", next(outs)],
        "unknown key": [*train, "--set", "nb_codes=64", "--out", next(outs)],
        "untyped value": [*train, "--set", "lr=fast", "--out", next(outs)],
        "set without =": [*train, "--set", "lr", "--out", next(outs)],
        "bad window": [*train, "--set", "window_size=30", "--out", next(outs)],
        "bad device": [*train, "--set", "device=tpu", "--out", next(outs)],
        "negative budget": [*train, "--time-budget", "-1", "--out", next(outs)],
        "existing run": [*train, "--out", run],
        "resume of nothing": [*train, "--out", next(outs), "--resume"],
        "resume and overwrite": [*train, "--out", next(runs), "--resume", "--overwrite"],
        "resume changes model": [*train, "--out", next(runs), "--resume", "--set", "nb_code=100"],
        "resume with other data": [
            *train, "--out", next(runs), "--resume", "--motion_file", str(tmp / "other.npy")
        ],
        "resume with --config": [*train, "--out", next(runs), "--resume", "--config", str(tmp / "bad.yaml")],
        "run dir in use": [*train, "--out", str(tmp / "busy"), *TINY],
        "missing checkpoint": ["scripts/evaluate.py", "--checkpoint", str(tmp / "no.pt"), "--motion_file",
                               sample, "--out", str(tmp / "ev")],
        "garbage checkpoint": ["scripts/evaluate.py", "--checkpoint", str(tmp / "bad.pt"), "--motion_file",
                               sample, "--out", str(tmp / "ev")],
        "evaluate missing data": ["scripts/evaluate.py", "--checkpoint", run + "/checkpoints/last.pt",
                                  "--motion_file", str(tmp / "nowhere"), "--out", str(tmp / "ev")],
        "visualize csv without fps": ["scripts/visualize.py", "--motion", str(tmp / "csv" / "a.csv"),
                                      "--out", str(tmp / "a.gif")],
        "visualize missing episode": ["scripts/visualize.py", "--episode", str(tmp / "e.npz"),
                                      "--out", str(tmp / "a.gif")],
        "visualize clip out of range": ["scripts/visualize.py", "--motion", sample, "--clip", "99",
                                        "--out", str(tmp / "a.gif")],
        "viewer missing motion": ["-m", "motion_vqvae.viewer", "--motion", str(tmp / "nowhere.csv")],
        "unknown robot": [*train, "--set", "robot=foo", "--out", next(outs)],
        "export into its run": ["scripts/export_onnx.py", "--checkpoint", run + "/checkpoints/last.pt",
                                "--out", run, "--overwrite"],
        "preprocess around its data": ["scripts/preprocess.py", "--motion_file", str(tmp / "csv"),
                                       "--out", str(tmp), "--overwrite"],
        "deploy missing export": ["scripts/deploy_example.py", "--export", str(tmp / "nowhere"),
                                  "--out", str(tmp / "deploy")],
    }  # fmt: skip


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    from motion_vqvae.commands.train import main as train_main

    tmp = tmp_path_factory.mktemp("user_errors")
    (tmp / "empty").mkdir()
    clips = load_motions(sample_motion_path())
    save_csv(clips[0], tmp / "csv" / "a.csv")  # no meta.json beside it: the fps is unknown
    save_npy(clips[:3], tmp / "other.npy")
    (tmp / "bad.yaml").write_text("agent:\n  config:\n    lr: [1, 2\n")
    (tmp / "bad.pt").write_text("not a checkpoint")
    assert train_main(["--out", str(tmp / "run"), *TINY]) == 0
    for i in range(RUN_COPIES):
        shutil.copytree(tmp / "run", tmp / f"run{i}", ignore=shutil.ignore_patterns(".lock"))
    (tmp / "busy").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("MOTION_VQVAE_DEBUG", None)
    with (tmp / "busy" / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a training run in progress holds it

        def run(args: list[str]) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
            )

        cases = _cases(tmp)
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(zip(cases, pool.map(run, cases.values()), strict=True))
    assert not list(tmp.glob("x*")), "a refused run leaves no run directory behind"
    assert (tmp / "run" / "checkpoints" / "last.pt").is_file(), "a refused --overwrite deletes nothing"
    assert (tmp / "csv" / "a.csv").is_file(), "a refused --overwrite deletes nothing"
    assert sorted(p.name for p in (tmp / "busy").iterdir()) == [".lock"], "nothing written into a busy dir"
    return results


def test_there_are_at_least_twenty_cases(tmp_path) -> None:
    assert len(_cases(tmp_path)) >= 20


@pytest.mark.parametrize("case", list(_cases(Path("/tmp"))))
def test_user_error_is_one_line_and_exit_2(case: str, outcomes) -> None:
    result = outcomes[case]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr[-2000:]
    assert len(errors[0]) > len("error: ") + 20, "the message says what is wrong"


def test_messages_name_the_problem(outcomes) -> None:
    expect = {
        "glob matching nothing": "matches no file",
        "yaml syntax error": "line 4",
        "unknown key": "did you mean 'nb_code'",
        "existing run": "--overwrite",
        "resume changes model": "nb_code=100",
        "resume with other data": "differ",
        "run dir in use": "in use",
        "csv without fps": "fps",
        "unknown robot": "unknown robot 'foo'",
        "export into its run": "checkpoint's run",
        "preprocess around its data": "contains the input data",
    }
    for case, text in expect.items():
        assert text in outcomes[case].stderr, (case, outcomes[case].stderr[-1000:])
