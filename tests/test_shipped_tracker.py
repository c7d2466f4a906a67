"""The shipped tracker (motion_vqvae/assets/tracker): its card agrees with it (its torch-free
parity is in tests/test_tracker_training.py), and it keeps the G1 up on a clip it trained on (real data)."""

from __future__ import annotations

import json
from pathlib import Path

from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.tracking.evaluate import policy_of, run_clips
from motion_vqvae.tracking.reference import ReferenceMotion
from motion_vqvae.tracking.release import source_clips
from motion_vqvae.tracking.report import load_tracker
from motion_vqvae.tracking.token_env import SHIPPED_TRACKER
from motion_vqvae.training.checkpoint import load_checkpoint

CARD = SHIPPED_TRACKER.parent / "card.json"


def test_card_names_the_clips_commands_and_figures_of_the_shipped_tracker() -> None:
    card, state = json.loads(CARD.read_text()), load_checkpoint(SHIPPED_TRACKER)
    assert card["clips"] == source_clips(list(state["clips"])) and card["trained_on"] == list(state["clips"])
    assert all(c.startswith(("B_", "J_", "M_")) for c in card["clips"])  # g1_moves names
    assert card["commands"] and card["budget_min"] > 0
    assert card["iterations"] == state["progress"]["iteration"]
    assert {r["clip"] for r in card["figures"]["per_clip"]} <= set(card["clips"])
    assert not any(k.startswith("critic.") for k in state["model"])  # a release: the policy only


def test_shipped_tracker_keeps_the_g1_up_on_a_training_clip(g1_moves_dir: Path) -> None:
    model, config = load_tracker(SHIPPED_TRACKER)
    body = G1Body(timestep=1.0 / config.physics_hz)
    clip = json.loads(CARD.read_text())["clips"][0]
    reference = ReferenceMotion.from_file(g1_moves_dir / f"{clip}.csv", None, body, config.control_fps)
    (run,) = run_clips(policy_of(model), reference, config)
    fell = f"fell after {run['steps'] / config.control_fps:.2f} s of {clip}"
    assert run["steps"] == run["clip_steps"], fell
