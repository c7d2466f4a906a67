"""A hostile user's --out: nothing the command did not write is ever deleted, names never collide, the
machine's refusals are one line naming the path, and a bug still shows its traceback (issue 24).

Most refusals happen before a checkpoint is read, so a garbage ``best.pt`` is enough; the evaluate cases
train the tiny tokenizer once (a few seconds).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from motion_vqvae import errors
from motion_vqvae.cli import cli_main
from motion_vqvae.commands import evaluate as evaluate_command
from motion_vqvae.commands import export_onnx, sample_prior, train_prior  # what scripts/*.py run
from motion_vqvae.commands import preprocess as preprocess_command
from motion_vqvae.data import sample_motion_path
from motion_vqvae.data.errors import MotionFileError
from motion_vqvae.data.fuzzing import sample_clip
from motion_vqvae.data.writers import MAX_STEM_BYTES, file_stems
from motion_vqvae.devices import resolve_device as _resolve_device
from motion_vqvae.export import ParityError
from motion_vqvae.outputs import claim, clean_stale_temps, environment_errors
from motion_vqvae.training import preprocess as preprocess_module

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from _tiny_tokenizer import train_tiny_tokenizer  # noqa: E402


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    """A run folder as training leaves it (a garbage checkpoint: nothing here may read it)."""
    run = tmp_path / "runs" / "g1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.pt").write_bytes(b"weights of a week of training")
    (run / "metrics.jsonl").write_text('{"iteration": 1}\n')
    return run


def _export(checkpoint: Path, out: Path, *extra: str) -> int:
    return export_onnx.main(["--checkpoint", str(checkpoint), "--out", str(out), *extra])


def _fake_export(out: Path) -> Path:
    """A folder that looks like an export to --overwrite: a manifest listing its one file."""
    out.mkdir(parents=True)
    (out / "decoder.onnx").write_bytes(b"onnx")
    (out / "manifest.json").write_text('{"files": {"decoder.onnx": {}}}')
    return out


def _one_error_line(capsys, *needles: str) -> str:
    stderr = capsys.readouterr().err.strip()
    errors_printed = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors_printed) == 1 and stderr.endswith(errors_printed[0]), stderr  # logs may come before
    assert "Traceback" not in stderr and errors_printed[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in errors_printed[0], stderr
    return errors_printed[0]


# --- export: --overwrite deletes only an export ---------------------------------------------------------


@pytest.mark.parametrize("where", ["run", "checkpoints", "parent", "inside"])
def test_export_into_or_around_the_checkpoints_run_is_refused(fake_run: Path, where: str, capsys) -> None:
    out = {
        "run": fake_run,
        "checkpoints": fake_run / "checkpoints",
        "parent": fake_run.parent,
        "inside": fake_run / "export",
    }[where]
    before = _snapshot(fake_run.parent)
    assert _export(fake_run / "checkpoints" / "best.pt", out, "--overwrite") == 2
    _one_error_line(capsys, str(out), "checkpoint's run")
    assert _snapshot(fake_run.parent) == before
    assert not (fake_run / "export").exists()


def test_export_overwrite_never_wipes_sibling_exports(fake_run: Path, tmp_path: Path, capsys) -> None:
    exports = tmp_path / "exports"
    for name in ("a", "b"):
        (exports / name).mkdir(parents=True)
        (exports / name / "decoder.onnx").write_bytes(b"onnx " + name.encode())
        (exports / name / "manifest.json").write_text('{"files": {"decoder.onnx": {}}}')
    before = _snapshot(exports)
    assert _export(fake_run / "checkpoints" / "best.pt", exports, "--overwrite") == 2
    _one_error_line(capsys, "manifest.json", "deleted nothing")
    assert _snapshot(exports) == before


def test_export_overwrite_refuses_an_export_with_foreign_files(
    fake_run: Path, tmp_path: Path, capsys
) -> None:
    out = _fake_export(tmp_path / "exports" / "g1")
    (out / "notes.txt").write_text("my notes")
    assert _export(fake_run / "checkpoints" / "best.pt", out, "--overwrite") == 2
    _one_error_line(capsys, "notes.txt")
    assert (out / "notes.txt").read_text() == "my notes"


def test_export_overwrite_of_an_export_keeps_it_when_the_new_one_fails(
    fake_run: Path, tmp_path: Path, capsys
) -> None:
    out = _fake_export(tmp_path / "exports" / "g1")
    before = _snapshot(out)
    assert _export(fake_run / "checkpoints" / "best.pt", out, "--overwrite") == 2  # garbage checkpoint
    _one_error_line(capsys, "best.pt")  # got as far as reading it: the old export was replaceable
    assert _snapshot(out) == before
    assert [p.name for p in out.parent.iterdir()] == ["g1"], "no temp folder or lock left behind"


def test_a_second_writer_into_one_out_is_refused(fake_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "exports" / "g1"
    with claim(out):
        assert _export(fake_run / "checkpoints" / "best.pt", out) == 2
        _one_error_line(capsys, "being written by pid")
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_a_killed_runs_temp_folders_are_removed_once_its_pid_is_dead(tmp_path: Path) -> None:
    out = tmp_path / "exports" / "g1"
    out.parent.mkdir()
    dead, alive = _dead_pid(), os.getpid()
    for name in (
        f".g1.tmp-{dead}",
        f".g1.partial-{dead}",
        f".g1.tmp-{alive}",
        f".g2.tmp-{dead}",
        ".g1.tmp-x",
    ):
        (out.parent / name).mkdir()
    (out.parent / f".g1.old-{dead}").mkdir()
    (out.parent / f".g1.old-{dead}" / "manifest.json").write_text("{}")
    removed = clean_stale_temps(out)
    assert sorted(p.name for p in removed) == sorted([f".g1.tmp-{dead}", f".g1.partial-{dead}"])
    left = sorted(p.name for p in out.parent.iterdir())
    assert left == sorted([".g1.tmp-x", f".g1.tmp-{alive}", f".g2.tmp-{dead}", "g1"])
    assert (out / "manifest.json").is_file(), "a previous export moved aside by a killed run is restored"


# --- preprocess -----------------------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    clips = tmp_path / "D" / "clips"
    clips.mkdir(parents=True)
    (clips / "sample.npy").write_bytes(sample_motion_path().read_bytes())
    return clips


@pytest.mark.parametrize("where", ["parent", "same", "inside"])
def test_preprocess_around_its_input_is_refused(dataset: Path, where: str, capsys) -> None:
    out = {"parent": dataset.parent, "same": dataset, "inside": dataset / "cache"}[where]
    before = _snapshot(dataset.parent)
    args = ["--motion_file", str(dataset), "--out", str(out), "--overwrite", "--workers", "1"]
    assert preprocess_command.main(args) == 2
    _one_error_line(capsys, "input data")
    assert _snapshot(dataset.parent) == before


def test_preprocess_overwrite_refuses_a_folder_that_is_not_a_cache(
    dataset: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "important"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    args = ["--motion_file", str(dataset), "--out", str(out), "--overwrite", "--workers", "1"]
    assert preprocess_command.main(args) == 2
    _one_error_line(capsys, "index.json", "not a dataset cache")
    assert (out / "thesis.tex").read_text() == "years of work"


def test_preprocess_replaces_its_own_cache_and_cleans_a_killed_runs_partial(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cache"
    args = ["--motion_file", str(dataset), "--out", str(out), "--workers", "1"]
    assert preprocess_command.main(args) == 0
    stale = tmp_path / f".cache.partial-{_dead_pid()}"
    stale.mkdir()
    (stale / "features_00000.f32").write_bytes(b"half")
    assert preprocess_command.main([*args, "--overwrite"]) == 0
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["D", "cache"]


def test_preprocess_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the main process left its pool workers blocked on their task queue forever."""
    script = textwrap.dedent(
        """
        import os, sys, time
        from concurrent.futures import ProcessPoolExecutor
        from motion_vqvae.training.preprocess import exit_with_parent
        pool = ProcessPoolExecutor(2, initializer=exit_with_parent, initargs=(os.getpid(), 0.1))
        list(pool.map(abs, range(4)))
        print(*pool._processes, flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(_running(pid) for pid in workers)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited; only its (dead) parent's parent may reap it


# --- environment errors ---------------------------------------------------------------------------------


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")  # as a write() reports it: no file name


def test_disk_full_in_preprocess_is_one_line_naming_the_out(
    dataset: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(preprocess_module, "_write", _disk_full)
    out = tmp_path / "cache"
    assert preprocess_command.main(["--motion_file", str(dataset), "--out", str(out), "--workers", "1"]) == 2
    _one_error_line(capsys, str(out), "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["D"], "no partial folder, no lock"


def test_read_only_out_in_sample_prior_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(sample_prior.LoadedPrior, "load", staticmethod(lambda path: path))
    monkeypatch.setattr(sample_prior, "generate_motion", read_only)
    prior, out = tmp_path / "prior.pt", tmp_path / "samples" / "x.csv"
    prior.write_bytes(b"x")
    assert sample_prior.main(["--prior", str(prior), "--seconds", "1", "--out", str(out)]) == 2
    _one_error_line(capsys, str(out), "Read-only file system")


def test_sample_prior_refuses_to_replace_a_file_without_overwrite(tmp_path: Path, capsys) -> None:
    prior, out = tmp_path / "prior.pt", tmp_path / "clip.csv"
    prior.write_bytes(b"x")
    out.write_text("a user's clip")
    assert sample_prior.main(["--prior", str(prior), "--seconds", "1", "--out", str(out)]) == 2
    _one_error_line(capsys, "--overwrite")
    assert out.read_text() == "a user's clip"


def test_disk_full_in_train_prior_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    tokenizer = train_tiny_tokenizer(tmp_path / "tok", str(sample_motion_path()), 2)  # read before writing
    monkeypatch.setattr(train_prior, "save_config", _disk_full)
    out = tmp_path / "prior"
    args = ["--tokenizer", str(tokenizer), "--motion_file", str(sample_motion_path()), "--out", str(out)]
    assert train_prior.main([*args, "--set", "num_threads=1"]) == 2
    _one_error_line(capsys, str(out), "No space left on device")
    assert not out.exists(), "no partial folder, no lock"


def test_train_prior_into_the_tokenizers_run_is_refused(fake_run: Path, capsys) -> None:
    before = _snapshot(fake_run)
    args = [
        "--tokenizer",
        str(fake_run / "checkpoints" / "best.pt"),
        "--motion_file",
        str(sample_motion_path()),
    ]
    assert train_prior.main([*args, "--out", str(fake_run)]) == 2
    _one_error_line(capsys, "tokenizer's run")
    assert _snapshot(fake_run) == before


def test_torch_writer_failure_is_attributed_to_the_path(tmp_path: Path) -> None:
    with pytest.raises(errors.EnvironmentFault, match=str(tmp_path)), environment_errors(tmp_path):
        raise RuntimeError("[enforce fail] PytorchStreamWriter failed writing file data/0: file write failed")
    with pytest.raises(RuntimeError, match="unrelated"), environment_errors(tmp_path):
        raise RuntimeError("unrelated")  # a bug stays itself


def test_a_missing_device_is_named(monkeypatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(errors.DeviceUnavailable, match="cuda:9"):
        _resolve_device("cuda:9")


# --- bugs are not user errors ---------------------------------------------------------------------------


def test_a_plain_value_error_deep_inside_keeps_its_traceback(
    dataset: Path, tmp_path: Path, monkeypatch
) -> None:
    def bug(*args: object, **kwargs: object) -> None:
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(preprocess_module, "_write", bug)
    monkeypatch.delenv("MOTION_VQVAE_DEBUG", raising=False)
    with pytest.raises(ValueError, match="broadcast") as caught:
        preprocess_command.main(
            ["--motion_file", str(dataset), "--out", str(tmp_path / "c"), "--workers", "1"]
        )
    assert not isinstance(caught.value, errors.UserError)


def test_an_oserror_without_a_path_keeps_its_traceback(monkeypatch) -> None:
    @cli_main
    def fails(argv: list[str] | None = None) -> int:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError):
        fails([])


def test_the_family_keeps_its_builtins_and_parity_stays_out() -> None:
    assert issubclass(errors.InvalidValue, ValueError) and issubclass(errors.UnknownKey, KeyError)
    assert issubclass(errors.InvalidType, TypeError) and issubclass(errors.MissingPath, FileNotFoundError)
    assert issubclass(MotionFileError, errors.UserError) and issubclass(MotionFileError, ValueError)
    assert not issubclass(ParityError, errors.UserError)
    assert str(errors.UnknownKey("no key 'x'")) == "no key 'x'"


# --- output names ---------------------------------------------------------------------------------------


def test_colliding_and_long_clip_names_get_distinct_capped_stems() -> None:
    stems = file_stems(
        ["walk/1", "walk_1", "walk:1", "walk 1", "WALK_1", "x" * 300, "x" * 300, ".hidden", "é" * 200]
    )
    assert len({s.casefold() for s in stems}) == len(stems)
    assert stems[:5] == ["walk_1", "walk_1_2", "walk_1_3", "walk_1_4", "WALK_1_5"]
    assert all(len(s.encode()) <= MAX_STEM_BYTES for s in stems)
    assert not stems[7].startswith(".")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    return train_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "run", str(sample_motion_path()), 2)


def test_evaluate_writes_one_reconstruction_per_clip_whatever_the_names(
    tokenizer: Path, tmp_path: Path
) -> None:
    names = ["walk/1", "walk_1", "walk:1", "walk 1", "n" * 300]
    clip = sample_clip(64)
    (tmp_path / "clips.pkl").write_bytes(pickle.dumps({name: clip for name in names}, protocol=4))
    out = tmp_path / "eval"
    args = ["--checkpoint", str(tokenizer), "--motion_file", str(tmp_path / "clips.pkl"), "--out", str(out)]
    assert evaluate_command.main([*args, "--split", "all", "--save-reconstructions"]) == 0
    written = sorted(p.name for p in (out / "reconstructions").glob("*.csv"))
    assert len(written) == len(names)
    rows = json.loads((out / "metrics.json").read_text())["per_clip"]
    assert sorted(r["name"] for r in rows) == sorted(names)
    assert sorted(Path(r["reconstruction"]).name for r in rows) == written
    assert np.loadtxt(out / rows[0]["reconstruction"], delimiter=",").shape[0] == 64


def test_evaluate_into_the_checkpoints_run_is_refused_but_inside_it_is_fine(tokenizer: Path, capsys) -> None:
    run = tokenizer.parent.parent
    args = ["--checkpoint", str(tokenizer), "--motion_file", str(sample_motion_path()), "--split", "all"]
    assert evaluate_command.main([*args, "--out", str(run)]) == 2
    _one_error_line(capsys, "checkpoint's run")
    assert evaluate_command.main([*args, "--out", str(run / "eval")]) == 0
    assert (run / "eval" / "metrics.json").is_file()


def test_an_unknown_robot_from_the_robot_side_is_a_user_error() -> None:
    from motion_vqvae.data import load_motions

    with pytest.raises(errors.UnknownKey, match="unknown robot 'foo'"):
        load_motions(sample_motion_path(), robot="foo")


def test_disk_full_in_evaluate_is_one_line(tokenizer: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import motion_vqvae.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "_write_json", _disk_full)
    out = tmp_path / "eval"
    args = ["--checkpoint", str(tokenizer), "--motion_file", str(sample_motion_path()), "--out", str(out)]
    assert evaluate_command.main([*args, "--split", "all"]) == 2
    _one_error_line(capsys, str(out), "No space left on device")
