"""Training end to end on real g1_moves clips, in seconds: loss drops, checkpoints reload, resume is exact."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_vqvae.agent import MVQVAEAgent
from motion_vqvae.config_loader import AgentConfig, ConfigLoader
from motion_vqvae.data import Motion, load_motions

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import evaluate as evaluate_script  # noqa: E402
import train_vqvae  # noqa: E402
from _tiny_tokenizer import TINY, tiny_sets  # noqa: E402

LOGGED = {"eval_every": 20, "save_every": 20, "print_iter": 2}


def _tiny_sets(iters: int, **extra) -> list[str]:
    return tiny_sets(iters, **{**LOGGED, **extra})


@pytest.fixture(scope="module")
def karate_glob(g1_moves_dir: Path) -> str:
    return str(g1_moves_dir / "B_*Karate.csv")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, karate_glob: str) -> Path:
    out = tmp_path_factory.mktemp("run")
    # test_fraction=0: the five training clips this error bar was set on (a sixth of six clips held out
    # as test takes the clip closest to the validation clip out of training)
    sets = _tiny_sets(150, test_fraction=0)
    code = train_vqvae.main(["--motion_file", karate_glob, "--out", str(out), *sets])
    assert code == 0
    return out


def test_training_writes_run_directory_and_loss_drops(trained_run: Path) -> None:
    assert (trained_run / "config.yaml").is_file()
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    assert train_rows[-1]["iteration"] == 150 and val_rows, "training and validation rows are logged"
    recons = [r["recons"] for r in train_rows]
    assert np.mean(recons[-10:]) < np.mean(recons[:10]), recons
    assert {"mpjpe_local_mm", "codebook_usage", "perplexity"} <= set(val_rows[-1])


def test_training_reduces_validation_error(trained_run: Path, tmp_path: Path) -> None:
    untrained = MVQVAEAgent(ConfigLoader(trained_run / "config.yaml").config, run_dir=tmp_path)
    untrained.setup_from_file()
    before = untrained.evaluate()["mpjpe_local_mm"]
    trained = MVQVAEAgent.from_checkpoint(trained_run / "checkpoints" / "last.pt")
    after = trained.evaluate(untrained.val_motions)["mpjpe_local_mm"]
    assert after < 0.85 * before, (before, after)


def test_checkpoints_load_safely_and_describe_themselves(trained_run: Path) -> None:
    for name in ("last.pt", "best.pt"):
        state = torch.load(trained_run / "checkpoints" / name, weights_only=True)
        assert {
            "model",
            "model_hparams",
            "optimizer",
            "scheduler",
            "rng",
            "iteration",
            "config",
            "feature_layout",
            "joint_map",
            "sampler",
        } <= set(state)
        assert any("quantizer" in k for k in state["model"]), "quantizer buffers travel with the model"
    assert not list((trained_run / "checkpoints").glob("*.tmp")), "no temp files left behind"


def test_agent_encode_decode_and_reconstruct(trained_run: Path, karate_glob: str) -> None:
    agent = MVQVAEAgent.from_checkpoint(trained_run / "checkpoints" / "last.pt")
    clip = load_motions(karate_glob, target_fps=30)[0]
    tokens = agent.encode(clip)
    assert tokens.dtype == np.int64 and len(tokens) == -(-clip.num_frames // 4)
    assert tokens.min() >= 0 and tokens.max() < 32
    decoded = agent.decode(tokens, start_pose=clip)
    assert decoded.num_frames == 4 * len(tokens) and decoded.num_dof == clip.num_dof
    np.testing.assert_allclose(decoded.root_pos[0, :2], clip.root_pos[0, :2], atol=1e-9)
    recon = agent.reconstruct(clip)
    assert recon.num_frames == clip.num_frames
    with pytest.raises(ValueError, match=r"\[0, 31\]"):
        agent.decode(np.array([0, 32]))


def test_evaluate_script_writes_metrics_plots_and_reconstructions(trained_run, karate_glob, tmp_path) -> None:
    out = tmp_path / "eval"
    evaluate_script.main(
        [
            "--checkpoint",
            str(trained_run / "checkpoints" / "best.pt"),
            "--motion_file",
            karate_glob,
            "--out",
            str(out),
            "--save-reconstructions",
            "--split",
            "all",
        ]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "all" and metrics["levels"] == 1
    for key in (
        "dof_rmse_rad",
        "mpjpe_local_mm",
        "mpjpe_global_mm",
        "pa_mpjpe_mm",
        "accel_error_mm",
        "root_pos_error_mm",
        "codebook_usage",
        "perplexity",
        "num_clips",
        "num_frames",
    ):
        assert np.isfinite(metrics[key]), key
    assert metrics["num_clips"] == len(metrics["per_clip"]) == 6
    for png in ("worst_joints.png", "error_over_time.png", "error_per_clip.png", "codebook_usage.png"):
        assert (out / png).stat().st_size > 10_000
    recons = sorted((out / "reconstructions").glob("*.csv"))
    assert len(recons) == 6
    back = load_motions(recons[0])[0]  # fps and joint names from the meta.json written beside them
    assert back.num_dof == 29 and back.fps == 30


def test_resume_is_exact(tmp_path, karate_glob: str) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_vqvae.main(["--motion_file", karate_glob, "--out", str(straight), *_tiny_sets(12, eval_every=6)])
    train_vqvae.main(
        [
            "--motion_file",
            karate_glob,
            "--out",
            str(split),
            *_tiny_sets(12, eval_every=6, save_every=6),
            "--time-budget",
            "1e-9",
        ]
    )
    first = torch.load(split / "checkpoints" / "last.pt", weights_only=True)
    assert first["iteration"] == 0
    _interrupt_at(5, split, karate_glob)
    train_vqvae.main(
        ["--motion_file", karate_glob, "--out", str(split), *_tiny_sets(12, eval_every=6), "--resume"]
    )
    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(split / "checkpoints" / "last.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 12
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def _interrupt_at(stop: int, out: Path, karate_glob: str) -> None:
    """Run with --resume and send a real SIGINT during step ``stop + 1``: training ends after that step."""
    import os
    import signal

    from motion_vqvae.training.trainer import Trainer

    original = Trainer.step

    def step(trainer, *rest):
        if trainer.iteration == stop:
            os.kill(os.getpid(), signal.SIGINT)  # handled by the loop's flag, not a KeyboardInterrupt
        return original(trainer, *rest)

    Trainer.step = step
    try:
        code = train_vqvae.main(
            ["--motion_file", karate_glob, "--out", str(out), *_tiny_sets(12, eval_every=6), "--resume"]
        )
    finally:
        Trainer.step = original
    assert code == 130
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["iteration"] == stop + 1


def test_bundled_sample_trains_without_any_file(tmp_path) -> None:
    agent = MVQVAEAgent(AgentConfig.from_dict({**TINY, "total_iter": 5, "eval_every": 5}), run_dir=tmp_path)
    agent.setup_from_file()
    summary = agent.fit()
    assert agent.iteration == 5 and np.isfinite(summary["mpjpe_local_mm"])
    assert (tmp_path / "checkpoints" / "best.pt").is_file()


def test_acceleration_loss_adds_to_the_objective(tmp_path) -> None:
    losses = []
    for accel in (0.0, 1.0):
        config = AgentConfig.from_dict({**TINY, "total_iter": 5, "warmup_iter": 1, "loss_accel": accel})
        agent = MVQVAEAgent(config, run_dir=tmp_path / str(accel))
        agent.setup_from_file()
        losses.append(agent.trainer.step())
    assert losses[0]["recons"] == losses[1]["recons"], "same seed, same batch, same reconstruction"
    assert losses[1]["loss"] > losses[0]["loss"]


def test_quantizer_keys_reach_the_model_and_its_checkpoint(tmp_path) -> None:
    config = AgentConfig.from_dict(
        {**TINY, "total_iter": 3, "eval_every": 3, "reset_threshold": 0.25, "l2_normalize_codes": True}
    )
    agent = MVQVAEAgent(config, run_dir=tmp_path)
    agent.setup_from_file()
    agent.fit()
    quantizer = agent.model.quantizer.parts[0]  # the one body part's VQ
    assert quantizer.reset_threshold == 0.25 and quantizer.l2_normalize
    np.testing.assert_allclose(quantizer.codebook.norm(dim=-1).numpy(), 1.0, atol=1e-5)
    reloaded = MVQVAEAgent.from_checkpoint(
        tmp_path / "checkpoints" / "last.pt", device="cpu"
    ).model.quantizer.parts[0]
    assert reloaded.reset_threshold == 0.25 and reloaded.l2_normalize


def test_split_auto_scores_the_held_out_clips_when_present() -> None:
    from motion_vqvae.evaluate import select_split

    clips = [
        Motion(name, 30.0, np.zeros((4, 3)), np.tile([0, 0, 0, 1.0], (4, 1)), np.zeros((4, 2)))
        for name in "abc"
    ]
    names = lambda ms: [m.name for m in ms]  # noqa: E731
    chosen, split = select_split(clips, ["b"], "auto", "ckpt")
    assert (names(chosen), split) == (["b"], "val")
    assert names(select_split(clips, ["b"], "train", "ckpt")[0]) == ["a", "c"]
    assert select_split(clips, ["z"], "auto", "ckpt")[1] == "all"
    with pytest.raises(ValueError, match="no val clips"):
        select_split(clips, ["z"], "val", "ckpt")
    with pytest.raises(ValueError, match="records no validation clips"):
        select_split(clips, [], "train", "ckpt")


def test_use_wandb_without_wandb_names_the_extra(monkeypatch, caplog) -> None:
    """wandb is an optional extra: a run asking for it without it installed says how to get it."""
    from types import SimpleNamespace

    from motion_vqvae.training.trainer import start_wandb

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with caplog.at_level("WARNING"):
        assert start_wandb(SimpleNamespace(), Path(".")) is None
    assert 'pip install -e ".[wandb]"' in caplog.text
