"""Every fenced ```python and ```bash block in docs/*.md runs here, so the guides cannot rot.

How a block runs:

- All blocks share one working directory (the session fixture ``example_workdir`` in conftest.py): a clone's
  root as a user sees it, with ``scripts/``, ``configs/`` and ``motion_vqvae/`` linked in, a tiny tokenizer
  with the default token structure in ``runs/g1`` (12 streams, 64 codes), a tiny prior in ``runs/prior`` and
  their export in ``exports/g1``. Blocks of one guide run in file order (a test runs the guide's earlier
  blocks first when they have not run yet), so a guide may build on its own earlier blocks; guides write
  to distinct ``runs/<guide>...`` folders.
- ``python`` blocks are executed in this process (``exec``) with the working directory as cwd.
- ``bash`` blocks run under ``bash -euo pipefail`` with this interpreter as ``python`` and the checkout on
  ``PYTHONPATH``, one torch thread. To keep them to seconds, the test rewrites commands before running them
  (:data:`SHORTEN`): ``train_vqvae.py`` and ``preprocess.py`` get the tiny model of tests/_tiny_tokenizer.py
  (a few steps) inserted before the block's own ``--set`` flags, which still win; ``train_prior.py`` gets the
  tiny prior of tests/test_prior.py; ``train_policy.py`` runs 256 PPO steps on 2 envs; ``--time-budget`` is
  kept (it never raises ``total_iter``).
- A block is skipped, with the reason shown, when the line before its fence is ``<!-- skip: REASON -->``
  (a display, a GPU, a cluster, a long run), or when it reads ``../shared`` and that folder is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from _tiny_tokenizer import tiny_sets
from test_prior import prior_sets

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
FENCE = re.compile(
    r"(?:^<!-- skip: (?P<skip>.+?) -->\n)?^```(?P<lang>python|bash)\n(?P<code>.*?)^```", re.M | re.S
)
SHORTEN: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(scripts/(?:train_vqvae|preprocess)\.py)"), r"\1 " + " ".join(tiny_sets(20))),
    (re.compile(r"(scripts/train_prior\.py)"), r"\1 " + " ".join(prior_sets(6))),
    (
        re.compile(r"(scripts/train_policy\.py.*?)--timesteps \d+", re.S),
        r"\1--timesteps 256 --num-envs 2 --eval-episodes 1",
    ),
]
BLOCK_TIMEOUT_S = 120


@dataclass(frozen=True)
class Block:
    guide: Path
    index: int
    language: str
    code: str
    skip: str | None

    @property
    def label(self) -> str:
        return f"{self.guide.name}:{self.index}:{self.language}"


def blocks(guide: Path) -> list[Block]:
    """The fenced python and bash blocks of one guide, in order, with their skip markers."""
    return [
        Block(guide, i, m["lang"], m["code"], m["skip"])
        for i, m in enumerate(FENCE.finditer(guide.read_text()))
    ]


ALL_BLOCKS = [b for guide in DOCS for b in blocks(guide)]


def shorten(code: str) -> str:
    """The block with the :data:`SHORTEN` rewrites applied (tiny models, a few steps)."""
    for pattern, replacement in SHORTEN:
        code = pattern.sub(replacement, code)
    return code


def _run_bash(block: Block, workdir: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "disabled",
        "MPLBACKEND": "Agg",
    }
    script = "python() { " + sys.executable + ' "$@"; }\n' + shorten(block.code)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert done.returncode == 0, (
        f"{block.label} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def _run_python(block: Block, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    namespace: dict = {"__name__": "docs"}
    exec(compile(block.code, block.label, "exec"), namespace)  # noqa: S102 - our own guides


@pytest.fixture(scope="module")
def ran() -> set[str]:
    """Labels of the blocks that have run in this session (a guide's later blocks need its earlier ones)."""
    return set()


def test_there_are_guides_with_code() -> None:
    assert DOCS, "docs/*.md is missing"
    assert (
        sum(b.language == "bash" for b in ALL_BLOCKS) >= 5
        and sum(b.language == "python" for b in ALL_BLOCKS) >= 5
    )


def test_fences_are_all_seen() -> None:
    """A block whose fence the pattern misses (```sh, an indented fence) would silently go untested."""
    for guide in DOCS:
        opening = [line for line in guide.read_text().splitlines() if re.match(r"^\s*```\w", line)]
        assert all(line in ("```python", "```bash", "```text", "```json", "```yaml") for line in opening), (
            f"{guide.name}: use ```python or ```bash for code (```text/json/yaml for output): {opening}"
        )
        assert sum(line in ("```python", "```bash") for line in opening) == len(blocks(guide))


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.label)
def test_every_block_runs(block: Block, example_workdir: Path, ran: set[str], monkeypatch) -> None:
    if block.skip:
        pytest.skip(block.skip)
    if "../shared" in block.code and not (example_workdir.parent / "shared").exists():
        pytest.skip("the block reads ../shared, which is absent")
    for earlier in blocks(block.guide)[: block.index]:
        if earlier.label not in ran and not earlier.skip and "../shared" not in earlier.code:
            _run(earlier, example_workdir, ran, monkeypatch)
    _run(block, example_workdir, ran, monkeypatch)


def _run(block: Block, workdir: Path, ran: set[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ran.add(block.label)  # a failure is not retried by the blocks after it
    if block.language == "bash":
        _run_bash(block, workdir)
    else:
        _run_python(block, workdir, monkeypatch)
