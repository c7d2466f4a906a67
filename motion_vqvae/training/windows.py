"""Random training windows gathered from preloaded clip tensors in one indexing op (no per-sample Python)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class WindowDraws:
    """What every window sampler shares: its own ``torch.Generator`` (checkpointed, so a resumed run
    draws exactly the windows the uninterrupted one would) and uniform draws over ``num_windows``.

    Subclasses say how many windows there are and :meth:`gather` them. Drawing and gathering are separate
    so that data-parallel ranks can draw one global batch with the same generator and each gather only
    its own share of it.
    """

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    @property
    def num_windows(self) -> int:
        raise NotImplementedError

    def draw(self, batch_size: int) -> torch.Tensor:
        """Indices ``(B,)`` of a batch of windows (CPU), advancing the sampler's generator."""
        return torch.randint(self.num_windows, (batch_size,), generator=self.generator)

    def gather(self, picks: torch.Tensor) -> torch.Tensor:
        """The windows ``(B, W, F)`` float32, on the sampler's device, at indices returned by :meth:`draw`."""
        raise NotImplementedError

    def clip_names(self, picks: torch.Tensor) -> list[str]:
        """The clip of each picked window, for error messages (empty when the sampler was given no names)."""
        return []

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch ``(B, W, F)`` of windows."""
        return self.gather(self.draw(batch_size))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])


def too_short(lengths: Sequence[int], window: int) -> ValueError:
    """The error for a dataset without one clip as long as a window."""
    return ValueError(
        f"no clip is at least window_size={window} frames long (clip lengths: {sorted(lengths)}); "
        "lower window_size or add longer clips"
    )


class WindowSampler(WindowDraws):
    """Uniform over every window that lies inside one clip; windows never straddle two clips.

    The clips are held in one tensor on the device: the fastest gather, for datasets that fit in memory
    (see ``memmap_windows.MemmapWindowSampler`` for those that do not).
    """

    def __init__(
        self,
        clips: Sequence[np.ndarray],
        window: int,
        seed: int,
        device: torch.device,
        names: Sequence[str] | None = None,
    ) -> None:
        """``names`` (one per clip) let :meth:`clip_names` say which clips a batch came from."""
        super().__init__(seed)
        kept = [i for i, c in enumerate(clips) if len(c) >= window]
        usable = [clips[i] for i in kept]
        if not usable:
            raise too_short([len(c) for c in clips], window)
        self._names = [names[i] for i in kept] if names is not None else []
        self._clip_first_window = np.cumsum([0] + [len(c) - window + 1 for c in usable[:-1]])
        self.window = window
        self.data = torch.as_tensor(np.concatenate(usable), dtype=torch.float32, device=device)  # (N, F)
        offsets = np.cumsum([0] + [len(c) for c in usable[:-1]])
        starts = np.concatenate(
            [o + np.arange(len(c) - window + 1) for o, c in zip(offsets, usable, strict=True)]
        )
        self.starts = torch.as_tensor(starts, dtype=torch.long, device=device)  # (S,)
        self._steps = torch.arange(window, device=device)  # (W,)

    @property
    def num_windows(self) -> int:
        return len(self.starts)

    def gather(self, picks: torch.Tensor) -> torch.Tensor:
        """The windows ``(B, W, F)`` at indices returned by :meth:`draw`."""
        first = self.starts[picks.to(self.starts.device)]  # (B,)
        return self.data[first[:, None] + self._steps]  # (B, W, F)

    def clip_names(self, picks: torch.Tensor) -> list[str]:
        if not self._names:
            return []
        clip = np.searchsorted(self._clip_first_window, picks.cpu().numpy(), side="right") - 1
        return [self._names[c] for c in clip]
