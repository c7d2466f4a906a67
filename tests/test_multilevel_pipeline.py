"""Each new quantizer end to end on real clips: exact resume, ONNX export parity, levels in evaluation."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from motion_vqvae import Tokenizer
from motion_vqvae.agent import MVQVAEAgent
from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data import load_motions
from motion_vqvae.export import export_checkpoint
from motion_vqvae.training.trainer import Trainer
from sim2real.token_spec import TokenSpec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from _tiny_tokenizer import TINY  # noqa: E402

ITERS = 6
VARIANTS = {
    "rvq": {"quantizer": "rvq", "num_quantizers": 3, "quantize_dropout": 0.5},
    "fsq": {"quantizer": "fsq", "fsq_levels": [5, 4, 3]},
    "parts": {"quantizer": "rvq", "num_quantizers": 2, "body_parts": "upper_lower", "burn_in": 8},
}


@pytest.fixture(scope="module")
def karate(g1_moves_dir: Path) -> str:
    return str(g1_moves_dir / "B_*Karate.csv")


@pytest.fixture(scope="module")
def motions(karate: str) -> list:
    return load_motions(karate, target_fps=30, repair_jumps=True)


def _config(variant: str) -> AgentConfig:
    return AgentConfig.from_dict(
        {**TINY, **VARIANTS[variant], "total_iter": ITERS, "eval_every": ITERS, "save_every": ITERS}
    )


def _agent(variant: str, run_dir: Path, motions: list) -> MVQVAEAgent:
    agent = MVQVAEAgent(_config(variant), run_dir=run_dir)
    agent.setup(motions)
    return agent


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_resume_exact_export_parity_and_levels(
    variant: str, tmp_path: Path, motions: list, karate: str, monkeypatch
) -> None:
    straight = _agent(variant, tmp_path / "straight", motions)
    straight.fit()

    original = Trainer.step

    def interrupted(trainer, *rest):
        if trainer.iteration == ITERS // 2 - 1:  # Ctrl-C inside a step: training stops after it
            os.kill(os.getpid(), signal.SIGINT)
        return original(trainer, *rest)

    monkeypatch.setattr(Trainer, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _agent(variant, tmp_path / "split", motions).fit()
    monkeypatch.setattr(Trainer, "step", original)
    resumed = _agent(variant, tmp_path / "split", motions)
    resumed.load(tmp_path / "split" / "checkpoints" / "last.pt", resume=True)
    assert resumed.iteration == ITERS // 2
    resumed.fit()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key

    checkpoint = tmp_path / "straight" / "checkpoints" / "last.pt"
    spec = straight.token_spec
    stored = torch.load(checkpoint, weights_only=True)["token_spec"]
    assert TokenSpec.from_dict(stored) == spec and spec.fps == 30.0
    manifest = export_checkpoint(Tokenizer.load(checkpoint), tmp_path / "export", motion_file=karate)
    assert TokenSpec.from_dict(manifest["token_spec"]) == spec
    assert manifest["parity"]["encoder_token_mismatches"] == 0
    assert manifest["parity"]["step_vs_sequence_max_abs_err"] <= 1e-5
    graph = onnx.load(str(tmp_path / "export" / "decoder.onnx")).graph
    dims = [d.dim_value or d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == (["batch", "tokens"] if spec.is_single else ["batch", "tokens", spec.num_streams])
    step_in = onnx.load(str(tmp_path / "export" / "decoder_step.onnx")).graph.input[0]
    assert len(step_in.type.tensor_type.shape.dim) == (1 if spec.is_single else 2)
    book = np.load(tmp_path / "export" / "codebook.npy")
    assert book.shape[-2] == spec.nb_code and (book.ndim == 2) == spec.is_single
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "export" / "decoder.onnx")).metadata_props}
    assert TokenSpec.from_dict(json.loads(props["token_spec"])) == spec

    summary = straight.evaluate()
    assert set(summary["codebook_usage_per_level"]) == set(spec.stream_names)
    if spec.num_levels > 1:
        from motion_vqvae.training.evaluation import evaluate_motions

        coarse, _ = evaluate_motions(straight.model, straight.layout, straight.val_motions, levels=1)
        assert coarse["levels"] == 1 and coarse["bits_per_second"] < summary["bits_per_second"]
        assert coarse["mpjpe_local_mm"] != summary["mpjpe_local_mm"]
