"""Tokenizer: loads a checkpoint once, frozen, without an optimizer or process-wide settings; encodes and
decodes exactly as the training agent does; refuses a checkpoint whose facts disagree, naming the field.

Runs on the tiny tokenizer trained from the bundled sample motion (no ../shared needed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_tokenizer import train_tiny_tokenizer

import motion_vqvae.tokenizer as tokenizer_module
from motion_vqvae import Tokenizer
from motion_vqvae.agent import MVQVAEAgent
from motion_vqvae.data import load_motions, sample_motion_path
from motion_vqvae.errors import InvalidValue
from motion_vqvae.training.checkpoint import state_digest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_tokenizer(tmp_path_factory.mktemp("tok"), str(sample_motion_path()), iters=10)


@pytest.fixture(scope="module")
def tok(checkpoint: Path) -> Tokenizer:
    return Tokenizer.load(checkpoint)


def _tampered(checkpoint: Path, out: Path, edit) -> Path:
    """The checkpoint edited by ``edit(state)`` with a recomputed checksum: passes the integrity check."""
    state = torch.load(checkpoint, weights_only=True)
    state.pop("sha256")
    edit(state)
    state["sha256"] = state_digest(state)
    torch.save(state, out)
    return out


def test_import_is_light_and_load_reads_once_without_optimizer_or_global_settings(checkpoint: Path) -> None:
    # A fresh process: torch's thread count and TF32 flags as they were, no optimizer ever constructed.
    script = f"""
import sys
import motion_vqvae
assert "torch" not in sys.modules, "import motion_vqvae must not import torch"
import torch
import motion_vqvae.training.checkpoint as ckpt
torch.set_num_threads(3)
reads, built = [], []
original_read = ckpt.torch.load
ckpt.torch.load = lambda *a, **k: reads.append(1) or original_read(*a, **k)
original_init = torch.optim.Optimizer.__init__
def spy(self, *a, **k):
    built.append(type(self).__name__)
    original_init(self, *a, **k)
torch.optim.Optimizer.__init__ = spy
flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
from motion_vqvae import Tokenizer
tok = Tokenizer.load({str(checkpoint)!r})
assert reads == [1], reads
assert built == [], built
assert torch.get_num_threads() == 3, torch.get_num_threads()
assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags
assert not tok.model.training
assert not any(p.requires_grad for p in tok.model.parameters())
print("OK")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]


def test_holds_the_checkpoints_facts(tok: Tokenizer, checkpoint: Path) -> None:
    from sim2real.manifest import sha256_file

    assert tok.path == checkpoint and tok.sha256 == sha256_file(checkpoint)
    assert tok.fps == tok.spec.fps == 30.0 and tok.robot.name == "g1_29dof"
    assert tok.layout.joint_names == list(tok.robot.sim_joint_names)
    card = tok.card()
    assert card["token_spec"] == tok.spec.to_dict() and card["checkpoint_sha256"] == tok.sha256
    assert card["joints"] == tok.layout.joint_names and card["training"]["iteration"] == 10
    assert card["training"]["dataset_fingerprint"] == tok.dataset is not None


def test_encode_decode_equal_the_agents(tok: Tokenizer, checkpoint: Path) -> None:
    agent = MVQVAEAgent.from_checkpoint(checkpoint, device="cpu")
    clip = load_motions(sample_motion_path())[0]
    tokens = tok.encode(clip)
    np.testing.assert_array_equal(tokens, agent.encode(clip))
    mine, theirs = tok.decode(tokens, start_pose=clip), agent.decode(tokens, start_pose=clip)
    np.testing.assert_array_equal(mine.dof, theirs.dof)
    np.testing.assert_array_equal(mine.root_pos, theirs.root_pos)
    recon = tok.reconstruct(clip)
    assert recon.num_frames == clip.num_frames
    np.testing.assert_array_equal(recon.dof, agent.reconstruct(clip).dof)
    np.testing.assert_array_equal(tok.encode(tok.decode(tokens)).shape, tokens.shape)
    # The in-memory tokenizer of a training agent is the same object, not a reload.
    assert agent.tokenizer().model is agent.model


def test_stream_steps_like_the_sequence_decoder(tok: Tokenizer) -> None:
    clip = load_motions(sample_motion_path())[0]
    tokens = torch.as_tensor(tok.encode(clip)[:6])
    stream = tok.stream()
    state = stream.init_state(1, "cpu")
    frames = []
    for t in tokens:
        out, state = stream.step(t[None], state)
        frames.append(out)
    whole = tok.model.decode(tokens[None])
    torch.testing.assert_close(torch.cat(frames, 1), whole, atol=1e-5, rtol=1e-5)


def test_a_flipped_byte_is_refused_naming_the_file(checkpoint: Path, tmp_path: Path) -> None:
    raw = bytearray(checkpoint.read_bytes())
    state = torch.load(checkpoint, weights_only=True)
    weight = next(v for v in state["model"].values() if v.numel() > 8).numpy().tobytes()
    at = raw.find(weight[:64])
    assert at > 0
    raw[at + 3] ^= 0x40
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(raw))
    with pytest.raises(InvalidValue, match=r"flipped\.pt is corrupted"):
        Tokenizer.load(bad)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["token_spec"].update(frames_per_token=8), r"token_spec .* disagrees"),
        (lambda s: s["config"].update(target_fps=50.0), r"config.target_fps is 50.0"),
        (
            lambda s: s["feature_layout"].update(joint_names=s["feature_layout"]["joint_names"][::-1]),
            r"joint_map.sim_joint_names .* differ|joint order",
        ),
        (lambda s: s.pop("token_spec"), r"predates token structures"),
    ],
    ids=["token_spec", "fps", "joint_order", "no_token_spec"],
)
def test_a_tampered_checkpoint_is_refused_naming_file_and_field(
    checkpoint: Path, tmp_path: Path, edit, message: str
) -> None:
    bad = _tampered(checkpoint, tmp_path / "tampered.pt", edit)
    with pytest.raises(InvalidValue, match=message) as caught:
        Tokenizer.load(bad)
    assert "tampered.pt" in str(caught.value)


def test_the_joint_order_check_covers_a_robot_in_another_order(tok: Tokenizer, monkeypatch) -> None:
    class Reordered:
        name = tok.robot.name
        mjcf = None
        sim_joint_names = list(tok.robot.sim_joint_names)[::-1]

    monkeypatch.setattr(tokenizer_module, "load_robot", lambda _: Reordered())
    with pytest.raises(InvalidValue, match="retrain in simulator order"):
        Tokenizer(tok.model, tok.config, tok.layout, tok.joint_map, path=tok.path)


def test_no_consumer_loads_through_the_agent() -> None:
    """Every consumer takes a Tokenizer: the training facade's loader appears nowhere but in agent.py."""
    offenders = [
        str(path.relative_to(REPO))
        for room in ("motion_vqvae", "sim2real", "scripts", "benchmarks")
        for path in (REPO / room).rglob("*.py")
        if path.name != "agent.py" and "MVQVAEAgent.from_checkpoint" in path.read_text()
    ]
    assert offenders == []
