"""Ship a tracker: a small copy of a training checkpoint and its ``card.json``.

Why a card: the shipped tracker (``motion_vqvae/assets/tracker/``) is only trustworthy on what it was trained
and measured on. The card states the clips (the source clip names, e.g. g1_moves', without the
``_decoded`` copies of ``train_tracker.py --tokenizer``), the commands and the budget that trained it, and the
figures of one ``evaluate_tracker.py`` run, which must be measured on those same clips.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from motion_vqvae.data.writers import atomic_write
from motion_vqvae.errors import InvalidValue
from motion_vqvae.training.checkpoint import load_checkpoint, save_checkpoint

DECODED_SUFFIX = "_decoded"
"""Name suffix of a clip's copy decoded through a tokenizer (``train_tracker.py --tokenizer``), followed by
the tokenizer's number when there are several."""
CARD_FIGURES = ("success_rate", "survival_share", "mpjpe_local_mm", "root_error_mm")


def release_tracker(path: str | Path, out: str | Path) -> Path:
    """A small copy of a training checkpoint for shipping: the policy (actor, normaliser, std) and the
    facts that rebuild its MDP and the names of the clips it was trained on (what its figures are measured
    on); no critic, optimizer or simulator state (they only matter for resuming)."""
    state = load_checkpoint(path)
    if "clips" not in state:
        raise ValueError(f"{path} names no training clips ('clips'); it predates release support, retrain it")
    keep = ("config", "obs_size", "joint_names", "clips", "action_scale", "default_dof")
    released = {k: state[k] for k in keep} | {"init_from": state.get("init_from")}
    released["model"] = {k: v for k, v in state["model"].items() if not k.startswith("critic.")}
    released["progress"] = {k: state["progress"][k] for k in ("iteration", "env_steps")}
    save_checkpoint(released, out)
    return Path(out)


def source_clips(trained_on: list[str]) -> list[str]:
    """The distinct source clips of a tracker's training clips, in order (decoded copies folded in)."""
    names = [re.sub(f"{DECODED_SUFFIX}[0-9]*$", "", n) for n in trained_on]
    return list(dict.fromkeys(names))


def tracker_card(
    checkpoint: str | Path, evaluation: dict[str, Any], commands: list[str], budget_min: float
) -> dict[str, Any]:
    """The card of a released tracker; refuses figures measured on clips the tracker did not train on."""
    state = load_checkpoint(checkpoint)
    clips = source_clips(list(state["clips"]))
    measured = [row["clip"] for row in evaluation["per_clip"]]
    foreign = [c for c in measured if c not in clips and c not in state["clips"]]
    if foreign:
        raise InvalidValue(
            f"tracker card: the evaluation scores {foreign}, which {checkpoint} did not train on "
            f"({list(state['clips'])}); evaluate it on its own clips"
        )
    return {
        "clips": clips,
        "trained_on": list(state["clips"]),
        "commands": list(commands),
        "budget_min": float(budget_min),
        "env_steps": int(state["progress"]["env_steps"]),
        "iterations": int(state["progress"]["iteration"]),
        "init_from": state.get("init_from"),
        "config": state["config"],
        "figures": {
            "tokenizer": evaluation.get("tokenizer"),
            **{k: evaluation[k] for k in CARD_FIGURES},
            "per_clip": [
                {k: row[k] for k in ("clip", "survival_share", "mpjpe_local_mm", "root_error_mm")}
                for row in evaluation["per_clip"]
            ],
        },
    }


def ship_tracker(
    checkpoint: str | Path, evaluation: str | Path, out: str | Path, commands: list[str], budget_min: float
) -> dict[str, Any]:
    """Write ``out/tracker.pt`` and ``out/card.json``; returns the card."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    card = tracker_card(checkpoint, json.loads(Path(evaluation).read_text()), commands, budget_min)
    release_tracker(checkpoint, out / "tracker.pt")
    text = json.dumps(card, indent=1).encode()
    atomic_write(out / "card.json", lambda handle: handle.write(text))
    return card
