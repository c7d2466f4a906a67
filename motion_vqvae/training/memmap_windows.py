"""Training windows gathered from a preprocessed cache's memory-mapped shards, so memory stays flat as the
dataset grows: only the windows of the current batch are read (the page cache keeps recently read ones).

Window ``k`` is found without a table of every window start: the clips' cumulative window counts (one int64
per clip, not per window) and a binary search give its clip and its offset. With the same clips in the same
order and the same seed, the draws and windows are exactly those of the in-memory ``WindowSampler``.

Pages of a memory map that a process has read count in its resident memory until unmapped, so a long run
over a large cache would end up holding all of it; every :data:`RESIDENT_BYTES` of windows read, the
sampler asks the cache to unmap them (they stay in the kernel's page cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from motion_vqvae.normalization import Normalizer
from motion_vqvae.training.cache import ClipEntry, MotionCache
from motion_vqvae.training.windows import WindowDraws, too_short

# A read fault on a file mapping also maps the already-cached pages around it (Linux fault_around_bytes,
# 64 KiB by default): each window can bring that much into the process besides its own bytes.
FAULT_AROUND_BYTES = 64 << 10
RESIDENT_BYTES = 256 << 20  # shard bytes a sampler lets its process map before unmapping them


class MemmapWindowSampler(WindowDraws):
    """Uniform over every window inside one clip of the cache's shards; normalised at gather time.

    Normalising here (float64, then float32, as the in-memory path normalises its clips) rather than in the
    cache keeps the cache independent of the statistics, which belong to the training split and the
    checkpoint.
    """

    def __init__(
        self,
        shards: Sequence[np.ndarray],
        clips: Sequence[ClipEntry],
        window: int,
        seed: int,
        device: torch.device,
        normalizer: Normalizer,
        release_pages: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(seed)
        self.release_pages = release_pages
        self._mapped_bytes = 0  # shard bytes touched since the last release_pages()
        usable = [c for c in clips if c.length >= window]
        if not usable:
            raise too_short([c.length for c in clips], window)
        self.window = window
        self.shards = list(shards)
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
            cache.shards(),
            cache.training_clips(),
            window,
            seed,
            device,
            cache.normalizer,
            cache.release_pages,
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
        """The windows ``(B, W, F)`` float32 on the device, read from the memory maps."""
        shard, row = self.locate(picks)
        batch = np.stack([self.shards[s][r : r + self.window] for s, r in zip(shard, row, strict=True)])
        if self.release_pages is not None:
            self._mapped_bytes += batch.nbytes + len(batch) * FAULT_AROUND_BYTES
            if self._mapped_bytes > RESIDENT_BYTES:
                self.release_pages()
                self._mapped_bytes = 0
        normalized = self.normalizer.normalize(batch.astype(np.float64)).astype(np.float32)
        return torch.from_numpy(normalized).to(self.device)
