"""The token policy's reachable commands read the root features by name (the layout's or the manifest's
``root_features``), so they are the decoded motion's own heading-frame velocity and yaw rate with either tilt
form (``prefer_expmap: true``: 3 columns, ``false``: 6), from a checkpoint and from its export alike.

Runs on tiny tokenizers trained from the bundled sample motion (no ../shared needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _tiny_tokenizer import train_tiny_tokenizer

from motion_vqvae import Tokenizer
from motion_vqvae.data import sample_motion_path
from motion_vqvae.envs.policy_training import reachable_commands
from motion_vqvae.envs.token_policy import token_effects
from motion_vqvae.rotations import quat_yaw, wrap_angle

REPEATS = 3
CODES = 4


@pytest.fixture(scope="module", params=[True, False], ids=["expmap", "6d"])
def tok(request, tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    out = tmp_path_factory.mktemp("tok")
    ckpt = train_tiny_tokenizer(out, str(sample_motion_path()), 6, prefer_expmap=request.param, nb_code=CODES)
    return Tokenizer.load(ckpt)


def _from_motion(tok: Tokenizer, code: int) -> list[float]:
    """(vx, vy, yaw rate) of the REPEATS-th token of ``code`` repeated, measured on the decoded motion."""
    fpt, fps = tok.spec.frames_per_token, tok.fps
    motion = tok.decode(np.full(REPEATS + 1, code))  # causal: one more token leaves the first ones alone
    frames = np.arange((REPEATS - 1) * fpt, REPEATS * fpt)
    yaw = quat_yaw(motion.root_quat)
    yaw_rate = wrap_angle(yaw[frames + 1] - yaw[frames]) * fps
    step = (motion.root_pos[frames + 1, :2] - motion.root_pos[frames, :2]) * fps  # world frame
    cos, sin = np.cos(yaw[frames]), np.sin(yaw[frames])
    local = np.stack([cos * step[:, 0] + sin * step[:, 1], -sin * step[:, 0] + cos * step[:, 1]], axis=1)
    return [*local.mean(axis=0), yaw_rate.mean()]


def test_reachable_commands_are_the_decoded_motions_velocities(tok: Tokenizer, tmp_path: Path) -> None:
    assert tok.layout.root_slices()["yaw_rate"] == ([7, 8] if tok.layout.prefer_expmap else [10, 11])
    expected = np.array([_from_motion(tok, code) for code in range(CODES)])
    assert np.abs(expected).max() > 1e-3  # moving codes: a wrong column would not agree by accident
    # The yaw measured from the tilted root quaternion differs from the heading's by up to 3e-4 rad/s.
    commands = reachable_commands(token_effects(tok, repeats=REPEATS))
    np.testing.assert_allclose(commands, expected, rtol=1e-2, atol=5e-4)
    export = tmp_path / "export"
    tok.export(export)
    commands = reachable_commands(token_effects(export, repeats=REPEATS))
    np.testing.assert_allclose(commands, expected, rtol=1e-2, atol=5e-4)
