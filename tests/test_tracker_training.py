"""train_tracker: a few PPO iterations, results.json, run-dir rules, exact resume; TrackerPolicy parity."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_vqvae.data import load_motions, sample_motion_path
from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.tracking.batch import TrackingBatch
from motion_vqvae.tracking.export import export_tracker, tracker_extra
from motion_vqvae.tracking.report import load_tracker
from motion_vqvae.tracking.train import train_tracker, training_motions
from motion_vqvae.training.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = {"num_envs": 4, "steps_per_env": 8, "epochs": 1, "minibatches": 2, "hidden": [32, 32], "save_every": 1}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tracker") / "run"
    train_tracker(sample_motion_path(), out, overrides={**TINY, "total_iter": 2})
    return out


def test_results_and_learning_curve(tiny_run: Path) -> None:
    results = json.loads((tiny_run / "results.json").read_text())
    for key in (
        "success_rate",
        "survival_share",
        "mpjpe_local_mm",
        "root_error_mm",
        "physics",
        "learning_curve",
    ):
        assert key in results
    assert 0.0 <= results["survival_share"] <= 1.0 and results["env_steps"] == 2 * 4 * 8
    assert set(results["physics"]) == {"executed", "reference"}
    assert "skate_mm" in results["physics"]["executed"]
    assert all(len(pair) == 2 and pair[0] > 0 for pair in results["learning_curve"])
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]


def test_used_run_dir_is_refused(tiny_run: Path) -> None:
    from motion_vqvae.cli import UserError

    with pytest.raises(UserError, match="--resume"):
        train_tracker(sample_motion_path(), tiny_run, overrides={**TINY, "total_iter": 2})
    with pytest.raises(UserError, match="would change"):
        train_tracker(sample_motion_path(), tiny_run, overrides={"num_envs": 8}, resume=True)


def test_resume_continues_bit_for_bit(tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_tracker(sample_motion_path(), straight, overrides={**TINY, "total_iter": 3})
    train_tracker(sample_motion_path(), split, overrides={**TINY, "total_iter": 1})
    train_tracker(sample_motion_path(), split, overrides={"total_iter": 3}, resume=True)
    a, b = load_checkpoint(straight / "checkpoints/last.pt"), load_checkpoint(split / "checkpoints/last.pt")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["progress"]["learning_curve"] == b["progress"]["learning_curve"]


def worst_target_gap(checkpoint: Path, out: Path, steps: int = 100) -> float:
    """Largest |PD target| difference between ``sim2real.TrackerPolicy`` (ONNX, its own observation) and
    the torch tracker in the batched env, over ``steps`` control steps on the bundled sample."""
    from dataclasses import replace

    from motion_vqvae.tracking.reference import ReferenceMotion
    from sim2real.tracker import TrackerPolicy

    export_tracker(checkpoint, out)
    robot = TrackerPolicy(out / "tracker.onnx")
    model, config = load_tracker(checkpoint)
    body = G1Body()
    reference = ReferenceMotion.from_file(sample_motion_path(), None, body, config.control_fps)
    batch = TrackingBatch(reference, replace(config, num_envs=1), body)
    obs = batch.reset()
    worst = 0.0
    for _ in range(steps):
        s, f, k = batch.state, batch.frame, batch.anchor
        targets = robot.step(
            reference.dof[f[0]], reference.dof_vel[f[0]], reference.body_quat[f[0], k], s["body_quat"][0, k],
            s["base_ang_vel"][0], s["dof"][0], s["dof_vel"][0],
        )  # fmt: skip
        with torch.no_grad():
            action = model(torch.from_numpy(obs)).double().numpy()
        worst = max(worst, float(np.abs(targets - batch.targets(action)[0]).max()))
        obs, _, terminated, truncated, _ = batch.step(action)
        if terminated[0] or truncated[0]:
            robot.reset()
    return worst


def test_tracker_policy_matches_torch(tiny_run: Path, tmp_path: Path) -> None:
    assert worst_target_gap(tiny_run / "checkpoints/last.pt", tmp_path) < 1e-4


def test_shipped_tracker_matches_torch(tmp_path: Path) -> None:
    from motion_vqvae.tracking.token_env import SHIPPED_TRACKER

    assert worst_target_gap(SHIPPED_TRACKER, tmp_path) < 1e-4


def test_tracker_policy_runs_where_torch_cannot_be_imported(tiny_run: Path, tmp_path: Path) -> None:
    export_tracker(tiny_run / "checkpoints/last.pt", tmp_path)
    script = textwrap.dedent(
        f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "motion_vqvae"):
                    raise ImportError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
        import numpy as np
        from sim2real.tracker import TrackerPolicy
        policy = TrackerPolicy({str(tmp_path)!r})
        n = len(policy.joint_names)
        q, pose, still = np.array([0.0, 0.0, 0.0, 1.0]), policy.default_dof, np.zeros(n)
        for _ in range(3):
            targets = policy.step(pose, still, q, q, np.zeros(3), pose, still)
        assert targets.shape == (n,) and np.isfinite(targets).all()
        print("ok", n)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "ok 29" in done.stdout


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from _tiny_tokenizer import train_tiny_tokenizer

    return train_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "tok", str(sample_motion_path()), iters=4)


def test_export_with_tracker_loads_on_the_robot_side(tiny_run: Path, tokenizer: Path, tmp_path: Path) -> None:
    from motion_vqvae import Tokenizer
    from motion_vqvae.export import export_checkpoint
    from sim2real import TokenDecoder
    from sim2real.tracker import TrackerPolicy

    extras = [tracker_extra(tiny_run / "checkpoints/last.pt")]
    manifest = export_checkpoint(Tokenizer.load(tokenizer), tmp_path / "export", extras=extras)
    assert "tracker.onnx" in manifest["files"] and manifest["tracker"]["control_fps"] == 50.0
    TokenDecoder(tmp_path / "export")  # the pin still matches with the tracker section in the manifest
    policy = TrackerPolicy(tmp_path / "export")
    assert policy.joint_names == manifest["tracker"]["joint_names"]


def test_released_tracker_is_small_and_acts_the_same(tiny_run: Path, tmp_path: Path) -> None:
    from motion_vqvae.tracking.release import release_tracker

    full = tiny_run / "checkpoints/last.pt"
    small = release_tracker(full, tmp_path / "tracker.pt")
    assert small.stat().st_size < full.stat().st_size / 2
    names = [m.name for m in load_motions(sample_motion_path())]
    assert (
        load_checkpoint(small)["clips"] == load_checkpoint(full)["clips"] == names
    )  # what it was trained on
    obs = torch.randn(5, load_checkpoint(full)["obs_size"])
    with torch.no_grad():
        assert torch.equal(load_tracker(full)[0](obs), load_tracker(small)[0](obs))


def test_token_track_env_runs_tokens_in_physics(tiny_run: Path, tokenizer: Path) -> None:
    import gymnasium as gym

    import motion_vqvae.envs  # noqa: F401  (registers the environments)
    from motion_vqvae.envs import TokenActionWrapper

    inner = gym.make("motion_vqvae/G1TokenTrack-v0", tracker=tiny_run / "checkpoints/last.pt")
    env = TokenActionWrapper(inner, tokenizer)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and np.isfinite(obs).all()
    assert inner.unwrapped.control_fps == 50.0
    heights = []
    for _ in range(40):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        heights.append(float(inner.unwrapped.batch.last_state["root_pos"][0, 2]))
        assert np.isfinite(obs).all() and reward >= 0.0
        if terminated:
            assert info["fell"]  # the tracker gave up: the robot fell or left the reference
            break
    assert len(set(heights)) > 1  # the physics robot moves


def test_training_with_a_tokenizer_adds_the_decoded_clips(tokenizer: Path, tmp_path: Path) -> None:
    from motion_vqvae.errors import UserError

    out = tmp_path / "run"
    train_tracker(sample_motion_path(), out, overrides={**TINY, "total_iter": 1}, tokenizers=[tokenizer])
    names = [m.name for m in load_motions(sample_motion_path())]
    assert load_checkpoint(out / "checkpoints/last.pt")["clips"] == names + [f"{n}_decoded" for n in names]
    two = training_motions(sample_motion_path(), None, [tokenizer, tokenizer])
    numbered = [f"{n}_decoded{k}" for k in (1, 2) for n in names]
    assert [m.name for m in two] == names + numbered
    with pytest.raises(UserError, match="--tokenizer"):  # the same clips, or the adaptive state is wrong
        train_tracker(sample_motion_path(), out, overrides={"total_iter": 2}, resume=True)


def test_release_writes_a_card_measured_on_its_own_clips(tiny_run: Path, tmp_path: Path) -> None:
    from motion_vqvae.commands.release_tracker import main
    from motion_vqvae.errors import InvalidValue
    from motion_vqvae.tracking.release import source_clips, tracker_card

    assert source_clips(["A", "B", "A_decoded", "B_decoded", "A_decoded2"]) == ["A", "B"]
    names = [m.name for m in load_motions(sample_motion_path())]
    name = names[0]
    row = {"clip": name, "survival_share": 1.0, "mpjpe_local_mm": 40.0, "root_error_mm": 90.0}
    evaluation = {"success_rate": 1.0, "survival_share": 1.0, "mpjpe_local_mm": 40.0, "root_error_mm": 90.0}
    (tmp_path / "eval.json").write_text(json.dumps({**evaluation, "tokenizer": "tok.pt", "per_clip": [row]}))
    run = str(tiny_run / "checkpoints/last.pt")
    argv = ["--checkpoint", run, "--evaluation", str(tmp_path / "eval.json")]
    rest = ["--command", "train_tracker.py ...", "--budget-min", "3", "--out", str(tmp_path / "r")]
    assert main([*argv, *rest]) == 0
    card = json.loads((tmp_path / "r/card.json").read_text())
    assert card["clips"] == names and card["commands"] == ["train_tracker.py ..."] and card["budget_min"] == 3
    assert card["figures"]["survival_share"] == 1.0 and card["iterations"] == 2
    assert load_tracker(tmp_path / "r/tracker.pt")[1].num_envs == TINY["num_envs"]
    foreign = {**evaluation, "per_clip": [{**row, "clip": "M_Move1"}]}
    with pytest.raises(InvalidValue, match="M_Move1"):  # figures from clips it never trained on
        tracker_card(tiny_run / "checkpoints/last.pt", foreign, ["x"], 1.0)


def test_init_from_starts_a_new_run_from_another_trackers_weights(tiny_run: Path, tmp_path: Path) -> None:
    from motion_vqvae.errors import UserError
    from motion_vqvae.tracking.release import release_tracker

    base = tiny_run / "checkpoints/last.pt"
    out = tmp_path / "tuned"
    train_tracker(sample_motion_path(), out, overrides={**TINY, "total_iter": 1, "seed": 1}, init_from=base)
    tuned, start = load_checkpoint(out / "checkpoints/last.pt"), load_checkpoint(base)
    moved = (tuned["model"]["actor.0.weight"] - start["model"]["actor.0.weight"]).abs().max()
    assert moved < 0.01  # two Adam steps from the start, not another seed's initialisation
    steps = [v["step"] for v in tuned["optimizer"]["state"].values()]
    assert all(int(x) == 2 * 2 + 2 for x in steps)  # Adam continues: 2 iterations x 2 minibatches, then 2
    assert tuned["init_from"] == {"path": str(base), "iterations": 2, "env_steps": 2 * 4 * 8}
    assert tuned["progress"]["iteration"] == 1
    with pytest.raises(UserError, match="pick one"):
        train_tracker(sample_motion_path(), out, overrides={"total_iter": 2}, resume=True, init_from=base)
    small = release_tracker(base, tmp_path / "small.pt")  # a release has no critic: it starts untrained
    train_tracker(sample_motion_path(), tmp_path / "b", overrides={**TINY, "total_iter": 1}, init_from=small)
    with pytest.raises(UserError, match="network differs"):
        narrow = {**TINY, "hidden": [16]}
        train_tracker(sample_motion_path(), tmp_path / "c", overrides=narrow, init_from=base)
