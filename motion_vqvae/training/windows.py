"""Random training windows gathered from preloaded clip tensors in one indexing op (no per-sample Python)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class WindowSampler:
    """Uniform over every window that lies inside one clip; windows never straddle two clips.

    The sampler owns its own ``torch.Generator`` so its state can be checkpointed and resumed exactly,
    independent of whatever else draws from torch's global RNG.
    """

    def __init__(self, clips: Sequence[np.ndarray], window: int, seed: int, device: torch.device) -> None:
        usable = [c for c in clips if len(c) >= window]
        if not usable:
            lengths = sorted(len(c) for c in clips)
            raise ValueError(
                f"no clip is at least window_size={window} frames long (clip lengths: {lengths}); "
                "lower window_size or add longer clips"
            )
        self.window = window
        self.data = torch.as_tensor(np.concatenate(usable), dtype=torch.float32, device=device)  # (N, F)
        offsets = np.cumsum([0] + [len(c) for c in usable[:-1]])
        starts = np.concatenate(
            [o + np.arange(len(c) - window + 1) for o, c in zip(offsets, usable, strict=True)]
        )
        self.starts = torch.as_tensor(starts, dtype=torch.long, device=device)  # (S,)
        self._steps = torch.arange(window, device=device)  # (W,)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    @property
    def num_windows(self) -> int:
        return len(self.starts)

    def draw(self, batch_size: int) -> torch.Tensor:
        """Indices ``(B,)`` of a batch of windows (CPU), advancing the sampler's generator.

        Drawing and gathering are separate so that data-parallel ranks can draw one global batch with the
        same generator and each gather only its own share of it.
        """
        return torch.randint(len(self.starts), (batch_size,), generator=self.generator)

    def gather(self, picks: torch.Tensor) -> torch.Tensor:
        """The windows ``(B, W, F)`` at indices returned by :meth:`draw`."""
        first = self.starts[picks.to(self.starts.device)]  # (B,)
        return self.data[first[:, None] + self._steps]  # (B, W, F)

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch ``(B, W, F)`` of windows."""
        return self.gather(self.draw(batch_size))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
