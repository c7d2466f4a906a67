"""The prior trains through the shared Trainer: exact resume after signals, refused resumes that write
nothing, the run-directory lock, --overwrite, the content-keyed token cache and the time-budget fit.

A tiny multi-level tokenizer (RVQ, 2 levels x 2 body parts = 4 streams) on the bundled sample.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _tiny_tokenizer import train_tiny_tokenizer  # noqa: E402
from test_prior import prior_sets  # noqa: E402

from motion_vqvae.commands.train_prior import main  # noqa: E402
from motion_vqvae.data import sample_motion_path  # noqa: E402
from motion_vqvae.prior.config import load_prior_config  # noqa: E402
from motion_vqvae.prior.task import PRIOR_RUN_FILES, PriorTask  # noqa: E402
from motion_vqvae.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from motion_vqvae.training.rundir import RunDirectory  # noqa: E402
from motion_vqvae.training.split import Split  # noqa: E402

ITERS = 12
SETS = {"mirror_augment": False, "speed_augment": "[]", "eval_every": 4, "save_every": 1000, "print_iter": 2}


def sets(**extra: object) -> list[str]:
    return prior_sets(ITERS, **{**SETS, **extra})


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default token structure in small: residual levels per body part (several streams)."""
    out = tmp_path_factory.mktemp("tok")
    structure = {"quantizer": "rvq", "body_parts": "upper_lower", "num_quantizers": 2}
    return train_tiny_tokenizer(out, str(sample_motion_path()), 20, **structure)


def train(tokenizer: Path, out: Path, *extra: str, motion: Path | None = None, **overrides: object) -> int:
    data = str(motion or sample_motion_path())
    return main(
        ["--tokenizer", str(tokenizer), "--motion_file", data, "--out", str(out), *sets(**overrides), *extra]
    )


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of a run (bytes and modification time), but the lock."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def rows(out: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock column."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "windows_per_s"} for line in lines]


def assert_equal_states(a: object, b: object, where: str = "last.pt") -> None:
    """Every tensor and value of two checkpoints, bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, set(a) ^ set(b))
        for key in a:
            assert_equal_states(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal_states(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def edited_copy(folder: Path, shift: float = 0.01) -> Path:
    """The bundled sample in ``folder``, one clip's joint angles moved by ``shift`` rad."""
    folder.mkdir(parents=True, exist_ok=True)
    data = np.load(sample_motion_path())
    data[:20, -6:-1] += shift  # five joints; the last column is the transition flag
    np.save(folder / "sample_motion.npy", data)
    return folder


@pytest.fixture(scope="module")
def captions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("captions") / "captions.yaml"
    path.write_text('captions:\n  - {pattern: "sample_motion_*", caption: "a karate chop"}\n')
    return path


@pytest.fixture(scope="module")
def straight(tokenizer: Path, captions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run, with captions (so caption dropout draws from its own generator)."""
    out = tmp_path_factory.mktemp("straight") / "prior"
    assert train(tokenizer, out, use_text=True, captions=captions) == 0
    return out


def test_sigint_sigterm_sighup_then_resume_equal_the_straight_run(
    tokenizer: Path, captions: Path, straight: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = {3: signal.SIGINT, 6: signal.SIGTERM, 9: signal.SIGHUP}  # sent inside the step after iteration N
    loss = PriorTask.loss

    def signalled(task: PriorTask, net, batch, iteration: int):
        if iteration in plan:
            os.kill(os.getpid(), plan[iteration])  # the Trainer's handler: stop at the step's end
        return loss(task, net, batch, iteration)

    monkeypatch.setattr(PriorTask, "loss", signalled)
    out = tmp_path / "prior"
    stops, stamps = [], set()
    for resume in ([], ["--resume"], ["--resume"], ["--resume"]):
        code = train(tokenizer, out, *resume, use_text=True, captions=captions)
        stops.append((code, load_checkpoint(out / "checkpoints" / "last.pt")["iteration"]))
        stamps.add((out / "tokens.pt").stat().st_mtime_ns)
    assert len(stamps) == 1, "a resume reads the tokens, it does not re-encode them"
    assert stops == [(130, 4), (128 + signal.SIGTERM, 7), (128 + signal.SIGHUP, 10), (0, ITERS)]
    for name in ("last.pt", "best.pt"):
        a = load_checkpoint(straight / "checkpoints" / name)
        b = load_checkpoint(out / "checkpoints" / name)
        assert_equal_states(a, b, name)
    assert rows(straight) == rows(out)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["captions"], "the run was conditioned on text"


def test_best_is_selected_on_the_tokenizers_val_split_and_test_clips_are_never_seen(
    tokenizer: Path, straight: Path
) -> None:
    split = Split.read(tokenizer.parent.parent / "split.json")
    assert split.val and split.test, split
    best = load_checkpoint(straight / "checkpoints" / "best.pt")
    assert best["val_clips"] == split.val
    trained = torch.load(straight / "tokens.pt", weights_only=True)["train"]
    assert not {name.split("@")[0].removesuffix("_mirrored") for name in trained} & set(split.test)
    scores = [r["nll_bits_per_token"] for r in rows(straight) if r["split"] == "val"]
    assert len(scores) == ITERS // SETS["eval_every"] and best["best_metric"] == min(scores)
    train_rows = [r for r in rows(straight) if r["split"] == "train"]
    assert {"loss", "bits_per_token", "lr", "nonfinite_skipped"} <= set(train_rows[0])


def test_resume_of_another_tokenizer_other_data_or_another_model_is_refused_before_writing(
    tokenizer: Path, captions: Path, straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other_tok = tmp_path / "other_tok" / "checkpoints" / "last.pt"  # the same split, other bytes
    other_tok.parent.mkdir(parents=True)
    shutil.copy(tokenizer.parent.parent / "split.json", other_tok.parent.parent / "split.json")
    state = load_checkpoint(tokenizer)
    save_checkpoint({**state, "iteration": state["iteration"] + 1}, other_tok)
    data = edited_copy(tmp_path / "data")
    before = snapshot(straight)
    cases = [
        (other_tok, None, {}, "tokenizer_sha256"),
        (tokenizer, data, {}, "dataset"),
        (tokenizer, None, {"n_layer": 2}, "n_layer=2"),
    ]
    for tok, motion, change, named in cases:
        code = train(tok, straight, "--resume", motion=motion, use_text=True, captions=captions, **change)
        message = capsys.readouterr().err
        assert code == 2 and named in message, message
        assert snapshot(straight) == before, f"a refused resume ({named}) wrote into the run"


def test_a_second_run_into_a_locked_run_directory_is_refused(
    tokenizer: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "prior"
    with RunDirectory(out, PRIOR_RUN_FILES).locked():
        assert train(tokenizer, out) == 2
    assert "is in use by a training run" in capsys.readouterr().err
    assert not (out / "checkpoints").exists()


def test_overwrite_replaces_the_run_keeps_other_files_and_reuses_the_token_cache(
    tokenizer: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "prior"
    assert train(tokenizer, out, total_iter=4) == 0
    notes = out / "notes.txt"
    notes.write_text("mine")
    cache = out / "tokens.pt"
    stamp = cache.stat().st_mtime_ns
    assert train(tokenizer, out, total_iter=6) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert train(tokenizer, out, "--overwrite", total_iter=6) == 0
    iterations = [r["iteration"] for r in rows(out) if r["split"] == "train"]
    assert iterations == [2, 4, 6], "only the new run's rows"
    assert load_checkpoint(out / "checkpoints" / "last.pt")["iteration"] == 6
    assert notes.read_text() == "mine" and cache.stat().st_mtime_ns == stamp


def test_added_or_edited_clips_are_re_encoded(tokenizer: Path, tmp_path: Path) -> None:
    data = edited_copy(tmp_path / "data", shift=0.0)
    out = tmp_path / "prior"

    def cached() -> dict:
        assert train(tokenizer, out, "--overwrite", motion=data, total_iter=2) == 0
        return torch.load(out / "tokens.pt", weights_only=True)

    first = cached()
    assert cached()["key"] == first["key"], "same clips: the cache is read"
    shutil.copy(data / "sample_motion.npy", data / "extra.npy")
    added = cached()
    assert added["key"] != first["key"] and any(n.startswith("extra_") for n in added["train"])
    edited_copy(data)  # sample_motion.npy's first clip changes
    edited = cached()
    assert edited["key"] != added["key"]
    changed = [n for n in edited["train"] if not torch.equal(edited["train"][n], added["train"][n])]
    assert changed and all(n.startswith("sample_motion_") for n in changed), changed


def test_a_time_budget_fits_the_schedule_so_it_anneals_by_the_deadline(
    tokenizer: Path, tmp_path: Path
) -> None:
    out = tmp_path / "prior"
    assert train(tokenizer, out, "--time-budget", "0.05", total_iter=100000, eval_every=100000) == 0
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    fitted = last["config"]["total_iter"]
    assert 0.8 * fitted <= last["iteration"] <= fitted < 100000  # a loaded machine may end it a little early
    cfg = load_prior_config()
    final = last["optimizer"]["param_groups"][0]["lr"]
    assert final <= 1.25 * cfg.gamma * cfg.lr, "the cosine reached (nearly) its end: gamma * lr"
    assert f"total_iter: {fitted}" in (out / "config.yaml").read_text()
