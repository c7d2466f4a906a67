"""The three-way split: train / val (selects best.pt) / test (reported by evaluate.py --split test only)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.training.split import Split, split_names

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import evaluate as evaluate_script  # noqa: E402
import train_vqvae  # noqa: E402
from _tiny_tokenizer import tiny_sets  # noqa: E402

NAMES = [f"clip{i:02d}" for i in range(53)]  # as many clips as g1_moves


def test_default_split_is_three_disjoint_non_empty_lists_and_keeps_the_old_validation_clips() -> None:
    cfg = AgentConfig()
    split = split_names(NAMES, cfg)
    train, val, test = set(split.train), set(split.val), set(split.test)
    assert val and test and train
    assert not (train & val or train & test or val & test) and train | val | test == set(NAMES)
    assert len(val) == len(test) == round(0.1 * len(NAMES))
    shuffled = split_names(list(reversed(NAMES)), cfg)
    assert (set(shuffled.val), set(shuffled.test)) == (val, test), "the names and seed decide, not the order"
    # the validation clips are the ones a run drew before the test split existed: a seeded shuffle's head
    import numpy as np

    order = sorted(NAMES)
    np.random.default_rng(cfg.seed).shuffle(order)
    assert val == set(order[:5]) and test == set(order[5:10])
    assert split_names(NAMES, cfg.replace(seed=cfg.seed + 1)) != split


def test_named_splits_win_and_are_checked() -> None:
    cfg = AgentConfig().replace(test_clips=["clip03", "clip07"], val_clips=["clip01"])
    split = split_names(NAMES, cfg)
    assert split.test == ["clip03", "clip07"] and split.val == ["clip01"] and len(split.train) == 50
    drawn = split_names(NAMES, AgentConfig().replace(test_clips=["clip03"]))
    assert drawn.test == ["clip03"] and "clip03" not in drawn.val and len(drawn.val) == 5
    with pytest.raises(ValueError, match=r"clips \['clip01'\] are in both val_clips and test_clips"):
        split_names(NAMES, cfg.replace(test_clips=["clip01"]))
    with pytest.raises(ValueError, match=r"test_clips \['nope'\] are not among the loaded clips"):
        split_names(NAMES, AgentConfig().replace(test_clips=["nope"]))
    with pytest.raises(ValueError, match="every clip is held out"):
        split_names(["a", "b"], AgentConfig().replace(val_clips=["a"], test_clips=["b"]))


def test_small_datasets_keep_a_training_clip_fill_val_first_and_say_so(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="motion_vqvae.training.split"):
        assert split_names(["only"], AgentConfig()) == Split(train=["only"], val=[], test=[])
    assert "test split: empty" in caplog.text
    two = split_names(["a", "b"], AgentConfig())
    assert len(two.train) == len(two.val) == 1 and two.test == []
    three = split_names(["a", "b", "c"], AgentConfig())
    assert [len(three.train), len(three.val), len(three.test)] == [1, 1, 1]
    assert split_names(NAMES, AgentConfig().replace(test_fraction=0.0)).test == []


def test_split_json_is_refused_when_damaged(tmp_path: Path) -> None:
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a"], "val": []}))
    with pytest.raises(ValueError, match="must hold exactly the lists"):
        Split.read(tmp_path / "split.json")
    with pytest.raises(FileNotFoundError, match="predates split.json"):
        Split.read(tmp_path / "none.json")


@pytest.fixture(scope="module")
def karate_run(tmp_path_factory: pytest.TempPathFactory, g1_moves_dir: Path) -> tuple[Path, str]:
    """Six karate clips, default fractions: 4 train, 1 val, 1 test; a few steps of the tiny tokenizer."""
    out = tmp_path_factory.mktemp("split") / "run"
    clips = str(g1_moves_dir / "B_*Karate.csv")
    assert train_vqvae.main(["--motion_file", clips, "--out", str(out), *tiny_sets(4)]) == 0
    return out, clips


def test_a_training_run_writes_split_json_and_never_scores_the_test_clips(karate_run) -> None:
    out, _ = karate_run
    split = Split.read(out / "split.json")
    assert split.train and split.val and split.test
    assert not set(split.train) & set(split.val) and not set(split.test) & (set(split.train) | set(split.val))
    state = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
    assert state["split"] == split.to_dict()
    assert state["val_clips"] and set(state["val_clips"]) <= set(split.val), "best.pt is chosen on val only"


def test_evaluate_split_test_scores_exactly_the_runs_test_clips(karate_run, tmp_path: Path) -> None:
    out, clips = karate_run
    split = Split.read(out / "split.json")
    ckpt = str(out / "checkpoints" / "last.pt")
    for name in ("test", "val"):  # train: the same path, four long clips
        target = tmp_path / name
        assert (
            evaluate_script.main(
                ["--checkpoint", ckpt, "--motion_file", clips, "--out", str(target), "--split", name]
            )
            == 0
        )
        metrics = json.loads((target / "metrics.json").read_text())
        assert metrics["split"] == name
        assert sorted(c["name"] for c in metrics["per_clip"]) == sorted(split.names(name))


def test_evaluate_split_test_refuses_without_split_json_or_with_missing_clips(
    karate_run, tmp_path: Path, g1_moves_dir: Path, capsys
) -> None:
    out, _ = karate_run
    split = Split.read(out / "split.json")
    ckpt = out / "checkpoints" / "last.pt"
    other = next(p for p in sorted(g1_moves_dir.glob("B_*Karate.csv")) if p.stem not in split.test)
    code = evaluate_script.main(
        [
            "--checkpoint",
            str(ckpt),
            "--motion_file",
            str(other),
            "--out",
            str(tmp_path / "a"),
            "--split",
            "test",
        ]
    )
    assert code == 2 and "are not in --motion_file" in capsys.readouterr().err
    moved = tmp_path / "moved.pt"
    moved.write_bytes(ckpt.read_bytes())
    code = evaluate_script.main(
        [
            "--checkpoint",
            str(moved),
            "--motion_file",
            str(other),
            "--out",
            str(tmp_path / "b"),
            "--split",
            "test",
        ]
    )
    assert code == 2 and "no split.json" in capsys.readouterr().err
