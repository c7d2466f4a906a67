"""Short, derandomized fuzz runs over the CSV, NPY, PKL and meta.json readers and the unpickler.

Each input must end as plausible clips or as a documented ``MotionFileError`` naming the file; any other
exception, an implausible accepted clip or an input taking seconds is a failure. The same targets run for
minutes in ``scripts/benchmark.py --sections fuzz``; failures found there go into tests/_hostile_corpus.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from motion_vqvae.data.fuzzing import TARGETS, FuzzStats, run_target

EXAMPLES = {"csv": 60, "npy": 60, "pkl": 40, "meta": 60, "unpickler": 80}


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target(target: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stats = FuzzStats()
    with caplog.at_level(logging.CRITICAL):  # refused inputs log warnings by the hundred
        run_target(target, tmp_path, stats, max_examples=EXAMPLES[target], seed=None, derandomize=True)
    assert stats.failures == {}
    assert stats.executions >= EXAMPLES[target] // 2
    assert stats.refused > 0  # the mutations do reach the checks
