"""Robot-side motion generation: ``TokenPrior(export_dir).sample(...)`` with onnxruntime and numpy only.

The export holds the prior's streaming graphs (``prior_start.onnx``: condition slot -> hidden state and
KV cache; ``prior_step.onnx``: tokens + KV cache -> hidden, logits, longer cache; ``prior_head.onnx`` for
tokenizers with several streams: the next step's streams one after the other) and
``prior_prompts.npz``: sentence embeddings of the captions it was trained with, computed at export time.
The text encoder is training-side (torch); a robot passes one of those captions or a precomputed
384-dimensional all-MiniLM-L6-v2 embedding (``motion_vqvae.prior.text.embed_texts``) as ``prompt``.

The sampling loop (:func:`sample_stream`) is shared with the torch sampler of the training side, which
passes its own backend: same seed, same tokens, up to float rounding.

:class:`TokenPrior` verifies the export as :class:`~sim2real.runtime.TokenDecoder` does: every file's hash,
the manifest's pin in each prior graph (an edited ``prior.sampling`` or ``block_size`` is refused), and one
run of each graph, whose output shapes must match the manifest's prior section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sim2real.manifest import MANIFEST, check_pin, load_manifest
from sim2real.runtime import check_output_shapes, make_session, run_graph
from sim2real.token_spec import TokenSpec

PROMPTS_FILE = "prior_prompts.npz"
PRIOR_GRAPHS = ("prior_start.onnx", "prior_step.onnx", "prior_head.onnx")


class PriorBackend(Protocol):
    """A prior's streaming interface on numpy arrays (rows = batch, S = streams)."""

    block_size: int
    text_dim: int  # 0: trained without text

    def start(self, text: np.ndarray, has_text: np.ndarray) -> tuple[np.ndarray, Any]:
        """Condition slot (text ``[R, E]``, keep flag ``[R]``) -> (hidden ``[R, D]``, cache)."""

    def step(self, tokens: np.ndarray, positions: np.ndarray, cache: Any) -> tuple[np.ndarray, Any]:
        """Tokens ``[R, T, S]`` at ``positions`` ``[T]`` -> (hidden ``[R, T, D]``, longer cache)."""

    def head(self, hidden: np.ndarray, next_tokens: np.ndarray) -> np.ndarray:
        """Logits ``[R, S, V]`` of the next step's streams (stream s uses ``next_tokens[:, :s]``)."""


@dataclass
class SamplingOptions:
    temperature: float = 1.0
    top_p: float = 0.9
    guidance_scale: float = 1.0
    use_cache: bool = True
    """False recomputes the whole context every step (the baseline the KV cache is measured against)."""


def sample_logits(
    logits: np.ndarray, rng: np.random.Generator, temperature: float, top_p: float
) -> np.ndarray:
    """One id per row of ``logits`` ``[R, V]``: temperature, then the smallest set holding ``top_p``."""
    if temperature <= 0 or not 0 < top_p <= 1:
        raise ValueError(f"temperature must be > 0 and top_p in (0, 1], got {temperature}, {top_p}")
    z = logits.astype(np.float64) / temperature
    probs = np.exp(z - z.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    out = np.empty(len(probs), np.int64)
    for row, p in enumerate(probs):
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, top_p * cum[-1])) + 1]
        out[row] = keep[rng.choice(len(keep), p=p[keep] / p[keep].sum())]
    return out


def top_p_mask(logits: np.ndarray, top_p: float) -> np.ndarray:
    """Boolean ``[..., V]``: the smallest set of ids holding ``top_p`` of the probability (GPC's
    constraint)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    order = np.argsort(-p, axis=-1, kind="stable")
    cum = np.cumsum(np.take_along_axis(p, order, axis=-1), axis=-1)
    inside = (cum - np.take_along_axis(p, order, axis=-1)) < top_p  # mass before this id not yet enough
    mask = np.zeros_like(inside)
    np.put_along_axis(mask, order, inside, axis=-1)
    return mask


def sample_stream(
    backend: PriorBackend,
    steps: int,
    *,
    streams: int,
    rng: np.random.Generator,
    text: np.ndarray | None = None,
    prefix: np.ndarray | None = None,
    options: SamplingOptions | None = None,
) -> np.ndarray:
    """``[steps, S]`` new tokens after ``prefix`` ``[P, S]``; with ``text`` (E,) and guidance scale g, the
    logits are ``uncond + g (cond - uncond)`` (classifier-free guidance)."""
    opts = options or SamplingOptions()
    guided = text is not None and opts.guidance_scale != 1.0
    rows = 2 if guided else 1
    text_rows = np.zeros((rows, max(backend.text_dim, 1)), np.float32)
    has = np.zeros(rows, np.float32)
    if text is not None:
        if len(text) != backend.text_dim:
            raise ValueError(f"a prompt embedding must have {backend.text_dim} values, got {len(text)}")
        text_rows[0], has[0] = text, 1.0
    history = (
        np.zeros((0, streams), np.int64)
        if prefix is None
        else np.asarray(prefix, np.int64).reshape(-1, streams)
    )
    keep = backend.block_size - 1 if not opts.use_cache else max(1, backend.block_size // 2)
    hidden, cache, position = prime_context(backend, text_rows, has, history[-(backend.block_size - 1) :])
    out = np.zeros((steps, streams), np.int64)
    for t in range(steps):
        chosen = np.zeros((rows, streams), np.int64)
        for s in range(streams):
            logits = backend.head(hidden, chosen)[:, s]  # (R, V)
            mixed = logits[1] + opts.guidance_scale * (logits[0] - logits[1]) if guided else logits[0]
            chosen[:, s] = sample_logits(mixed[None], rng, opts.temperature, opts.top_p)[0]
        out[t] = chosen[0]
        history = np.concatenate([history, chosen[:1]])
        if not opts.use_cache or position >= backend.block_size:
            hidden, cache, position = prime_context(backend, text_rows, has, history[-keep:])
        else:
            h, cache = backend.step(chosen[:, None], np.array([position], np.int64), cache)
            hidden, position = h[:, -1], position + 1
    return out


def prime_context(
    backend: PriorBackend, text: np.ndarray, has: np.ndarray, context: np.ndarray
) -> tuple[np.ndarray, Any, int]:
    """Hidden state after the condition slot and ``context`` ``[C, S]`` (C < block_size), its cache,
    next position: the start of a stream, and its restart on the recent tokens once the positions run out."""
    hidden, cache = backend.start(text, has)
    if len(context):
        batch = np.broadcast_to(context[None], (len(text), *context.shape)).copy()
        h, cache = backend.step(batch, np.arange(1, len(context) + 1, dtype=np.int64), cache)
        hidden = h[:, -1]
    return hidden, cache, len(context) + 1


class OnnxPriorBackend:
    """The exported graphs behind :class:`PriorBackend`."""

    def __init__(self, root: Path, section: dict[str, Any], threads: int = 1) -> None:
        self.block_size = int(section["block_size"])
        self.text_dim = int(section["text_dim"])
        self.start_session = make_session(root / "prior_start.onnx", threads)
        self.step_session = make_session(root / "prior_step.onnx", threads)
        self.head_session = make_session(root / "prior_head.onnx", threads)
        self.sessions = (self.start_session, self.step_session, self.head_session)  # as PRIOR_GRAPHS

    def start(self, text: np.ndarray, has_text: np.ndarray) -> tuple[np.ndarray, Any]:
        hidden, keys, values = self.start_session.run(
            None, {"text": text.astype(np.float32), "has_text": has_text}
        )
        return hidden, (keys, values)

    def step(self, tokens: np.ndarray, positions: np.ndarray, cache: Any) -> tuple[np.ndarray, Any]:
        feeds = {"tokens": tokens, "positions": positions, "past_keys": cache[0], "past_values": cache[1]}
        hidden, _, keys, values = self.step_session.run(None, feeds)
        return hidden, (keys, values)

    def head(self, hidden: np.ndarray, next_tokens: np.ndarray) -> np.ndarray:
        return self.head_session.run(None, {"hidden": hidden, "next_tokens": next_tokens})[0]


def check_prior_graphs(
    backend: OnnxPriorBackend, section: dict[str, Any], spec: TokenSpec, root: Path
) -> None:
    """One run of each prior graph at batch 1: hidden states, KV caches and logits of the shapes the
    manifest's ``prior.model_hparams`` and its ``token_spec`` give, or ValueError naming the graph."""
    hp = section["model_hparams"]
    try:
        layers, heads, width = int(hp["n_layer"]), int(hp["n_head"]), int(hp["n_embd"])
        if int(hp["block_size"]) != backend.block_size or int(hp["text_dim"]) != backend.text_dim:
            raise ValueError("block_size/text_dim differ from model_hparams")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{root / MANIFEST}: prior.model_hparams do not describe the graphs ({exc})"
        ) from None
    cache = (layers, 1, heads, 1, width // heads)
    streams, vocab = spec.num_streams, spec.nb_code
    feeds = {"text": np.zeros((1, max(backend.text_dim, 1)), np.float32), "has_text": np.ones(1, np.float32)}
    start = run_graph(backend.start_session, feeds, root / "prior_start.onnx")
    hidden_size = width + streams  # the transformer's state and the previous step's token ids
    check_output_shapes(
        root / "prior_start.onnx",
        [a.shape for a in start],
        [(1, hidden_size), cache, cache],
        "one condition slot",
    )
    hidden, keys, values = start
    step_feeds = {
        "tokens": np.zeros((1, 1, streams), np.int64),
        "positions": np.full(1, backend.block_size - 1, np.int64),  # the last position sampling uses
        "past_keys": keys,
        "past_values": values,
    }
    longer = (*cache[:3], 2, cache[4])
    check_output_shapes(
        root / "prior_step.onnx",
        [a.shape for a in run_graph(backend.step_session, step_feeds, root / "prior_step.onnx")],
        [(1, 1, hidden_size), (1, 1, vocab), longer, longer],
        f"one step of {streams} stream(s) after the condition slot",
    )
    head_feeds = {"hidden": hidden, "next_tokens": np.zeros((1, streams), np.int64)}
    check_output_shapes(
        root / "prior_head.onnx",
        [a.shape for a in run_graph(backend.head_session, head_feeds, root / "prior_head.onnx")],
        [(1, streams, vocab)],
        f"{streams} stream(s) of {vocab} ids",
    )


class TokenPrior:
    """Samples token streams from an export's prior; decode them with :class:`sim2real.TokenDecoder`."""

    def __init__(self, export_dir: str | Path, threads: int = 1) -> None:
        self.root = Path(export_dir)
        manifest = load_manifest(self.root)
        section = manifest.get("prior")
        if section is None:
            raise KeyError(
                f"{self.root}: the export has no prior; export with "
                "scripts/export_onnx.py --checkpoint TOKENIZER --prior PRIOR --out DIR"
            )
        source = f"{self.root / MANIFEST}: prior"
        unlisted = [n for n in (*PRIOR_GRAPHS, PROMPTS_FILE) if n not in manifest["files"]]
        if unlisted:
            raise KeyError(f"{source}: 'files' does not list {unlisted}; the export is incomplete, re-export")
        # The prior samples the tokenizer's tokens: the manifest's one token_spec (format 4) is its structure.
        self.spec = TokenSpec.from_dict(manifest["token_spec"], source=f"{self.root / MANIFEST}: token_spec")
        self.defaults = section["sampling"]
        self.backend = OnnxPriorBackend(self.root, section, threads)
        for name, session in zip(PRIOR_GRAPHS, self.backend.sessions, strict=True):
            check_pin(manifest, session.get_modelmeta().custom_metadata_map, name)
        check_prior_graphs(self.backend, section, self.spec, self.root)
        prompts = np.load(self.root / PROMPTS_FILE)
        self.prompts = dict(zip(prompts["captions"].tolist(), prompts["embeddings"], strict=True))
        self.text_dim = self.backend.text_dim

    @property
    def tokens_per_second(self) -> float:
        return self.spec.fps / self.spec.frames_per_token

    def prompt_embedding(self, prompt: str | np.ndarray) -> np.ndarray:
        """A caption known to the export, or a precomputed embedding of the text model's size."""
        if self.text_dim == 0:
            raise ValueError(f"{self.root}: this prior was trained without text; sample with prompt=None")
        if isinstance(prompt, str):
            if prompt not in self.prompts:
                raise KeyError(
                    f"prompt {prompt!r} has no precomputed embedding in {self.root / PROMPTS_FILE}; "
                    f"use one of {sorted(self.prompts)} or pass its all-MiniLM-L6-v2 embedding, "
                    "computed on the training side with motion_vqvae.prior.text.embed_texts([prompt])[0]"
                )
            return self.prompts[prompt]
        emb = np.asarray(prompt, np.float32).reshape(-1)
        if emb.shape != (self.text_dim,) or not np.isfinite(emb).all():
            raise ValueError(
                f"a prompt embedding must be {self.text_dim} finite floats, got shape {emb.shape}"
            )
        return emb

    def sample(
        self,
        seconds: float,
        seed: int | None = None,
        prompt: str | np.ndarray | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        guidance_scale: float | None = None,
        prefix: Any = None,
    ) -> np.ndarray:
        """Tokens (``[T]`` for one stream, else ``[T, S]``) covering ``seconds`` of motion after
        ``prefix``."""
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        steps = int(np.ceil(seconds * self.tokens_per_second))
        options = SamplingOptions(
            temperature=self.defaults["temperature"] if temperature is None else temperature,
            top_p=self.defaults["top_p"] if top_p is None else top_p,
            guidance_scale=self.defaults["guidance_scale"] if guidance_scale is None else guidance_scale,
        )
        text = None if prompt is None else self.prompt_embedding(prompt)
        streams = self.spec.num_streams
        pre = None if prefix is None else self.spec.check_tokens(prefix).reshape(-1, streams)
        out = sample_stream(
            self.backend,
            steps,
            streams=streams,
            rng=np.random.default_rng(seed),
            text=text,
            prefix=pre,
            options=options,
        )
        return out[:, 0] if self.spec.is_single else out
