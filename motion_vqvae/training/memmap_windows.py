"""Training windows gathered from a preprocessed cache's shards, so memory stays flat as the dataset grows:
only the windows of the current batch are read (the kernel's page cache keeps recently read ones).

Window ``k`` is found without a table of every window start: the clips' cumulative window counts (one int64
per clip, not per window) and a binary search give its clip and its offset. With the same clips in the same
order and the same seed, the draws and windows are exactly those of the in-memory ``WindowSampler``.

Each window is read with one positioned read into the batch array (:meth:`MotionCache.read_windows`), not
through a memory map: a shard that shrinks under the run then raises an error naming it instead of killing
the process with SIGBUS, and no read page stays mapped in the process, so its resident memory does not grow
with the bytes it has read. (The module keeps its name: the sampler was memory-mapped first.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from motion_vqvae.normalization import Normalizer
from motion_vqvae.training.cache import ClipEntry, MotionCache
from motion_vqvae.training.windows import WindowDraws, too_short

WindowReader = Callable[[Sequence[int], Sequence[int], np.ndarray], None]
"""``read(shards, rows, out)``: fill ``out[i]`` ``(B, T, F)`` with rows ``rows[i] ..`` of ``shards[i]``."""


class MemmapWindowSampler(WindowDraws):
    """Uniform over every window inside one clip of the cache's shards; normalised at gather time.

    Normalising here (float64, then float32, as the in-memory path normalises its clips) rather than in the
    cache keeps the cache independent of the statistics, which belong to the training split and the
    checkpoint.
    """

    def __init__(
        self,
        read_windows: WindowReader,
        dim: int,
        clips: Sequence[ClipEntry],
        window: int,
        seed: int,
        device: torch.device,
        normalizer: Normalizer,
    ) -> None:
        super().__init__(seed)
        usable = [c for c in clips if c.length >= window]
        if not usable:
            raise too_short([c.length for c in clips], window)
        self.read_windows, self.dim = read_windows, dim
        self.window = window
        self.device = device
        self.normalizer = normalizer
        self.clip_shard = np.array([c.shard for c in usable], dtype=np.int64)
        self.clip_offset = np.array([c.offset for c in usable], dtype=np.int64)
        counts = np.array([c.length - window + 1 for c in usable], dtype=np.int64)
        self.cum_windows = np.cumsum(counts)  # (clips,): windows in this clip and every one before it
        self.first_window = self.cum_windows - counts
        self.names = [c.name for c in usable]

    @classmethod
    def from_cache(
        cls, cache: MotionCache, window: int, seed: int, device: torch.device
    ) -> MemmapWindowSampler:
        """Over the cache's training clip versions, normalised with the cache's statistics."""
        return cls(
            cache.read_windows, cache.dim, cache.training_clips(), window, seed, device, cache.normalizer
        )

    @property
    def num_windows(self) -> int:
        return int(self.cum_windows[-1])

    def locate(self, picks: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Shard and first row ``(B,)`` of each picked window."""
        k = picks.cpu().numpy().astype(np.int64)
        clip = np.searchsorted(self.cum_windows, k, side="right")
        return self.clip_shard[clip], self.clip_offset[clip] + (k - self.first_window[clip])

    def clip_names(self, picks: torch.Tensor) -> list[str]:
        clip = np.searchsorted(self.cum_windows, picks.cpu().numpy().astype(np.int64), side="right")
        return [self.names[c] for c in clip]

    def gather(self, picks: torch.Tensor) -> torch.Tensor:
        """The windows ``(B, W, F)`` float32 on the device, read from the shards."""
        shard, row = self.locate(picks)
        batch = np.empty((len(row), self.window, self.dim), dtype=np.float32)
        self.read_windows(shard.tolist(), row.tolist(), batch)
        normalized = self.normalizer.normalize(batch.astype(np.float64)).astype(np.float32)
        return torch.from_numpy(normalized).to(self.device)
