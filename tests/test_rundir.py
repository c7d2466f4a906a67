"""Run directories: --overwrite replaces a run; --resume keeps the checkpoint's config, schedule aside."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import yaml

from motion_vqvae.commands.train import main as train_main

TINY = ["width=16", "depth=1", "nb_code=32", "code_dim=16", "output_emb_width=16", "window_size=16"]
TINY += ["batch_size=16", "num_threads=1", "eval_every=4", "print_iter=2"]
SETS = [a for s in TINY for a in ("--set", s)]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_overwrite_replaces_the_run_instead_of_appending(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train_main(["--out", str(out), *SETS, "--set", "total_iter=6"]) == 0
    (out / "eval").mkdir()  # not a training file: --overwrite leaves it
    assert train_main(["--out", str(out), *SETS, "--set", "total_iter=4", "--overwrite"]) == 0
    assert max(r["iteration"] for r in _rows(out)) == 4, "only the new run's rows"
    assert torch.load(out / "checkpoints" / "best.pt", weights_only=True)["iteration"] == 4
    assert (out / "eval").is_dir()


def test_resume_uses_the_checkpoint_config_and_logs_schedule_changes(tmp_path: Path, caplog) -> None:
    out = tmp_path / "run"
    assert train_main(["--out", str(out), *SETS, "--set", "total_iter=4", "--set", "lr=1e-3"]) == 0
    with (out / "metrics.jsonl").open("a") as fh:  # a row past the checkpoint, as a killed run leaves
        fh.write(json.dumps({"iteration": 99, "split": "train", "loss": 1.0}) + "\n")
    with caplog.at_level(logging.INFO):
        assert train_main(["--out", str(out), "--resume", "--set", "total_iter=8"]) == 0
    assert "resume: total_iter changed from 4 to 8" in caplog.text
    config = yaml.safe_load((out / "config.yaml").read_text())["agent"]["config"]
    assert config["total_iter"] == 8 and config["lr"] == 1e-3 and config["width"] == 16, "checkpoint's config"
    iterations = [r["iteration"] for r in _rows(out)]
    assert 99 not in iterations and max(iterations) == 8
