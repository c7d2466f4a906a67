"""Hostile numbers on the training side: NaN/inf in data or settings, crafted checkpoint sizes.

A non-finite step is skipped and counted, a run that stays non-finite stops naming the step, the loss
term and the cause, no checkpoint ever holds a non-finite tensor, the typed configs refuse NaN and absurd
sizes, and a checkpoint whose hyper-parameters disagree with its tensors is refused before allocation.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _tiny_tokenizer import TINY, tiny_sets, train_vqvae

from motion_vqvae.agent import MVQVAEAgent
from motion_vqvae.config_loader import AgentConfig, typed_from_dict
from motion_vqvae.devices import resolve_device as _resolve_device
from motion_vqvae.errors import DeviceUnavailable
from motion_vqvae.prior.config import PriorConfig
from motion_vqvae.prior.model import TokenGPT
from motion_vqvae.training.checkpoint import check_model_shapes, save_checkpoint, state_digest
from motion_vqvae.training.nonfinite import (
    CONSECUTIVE_LIMIT,
    NonFiniteError,
    NonFiniteGuard,
    non_finite_tensors,
)

REPO = Path(__file__).resolve().parents[1]


def _agent(tmp_path: Path, **extra: object) -> MVQVAEAgent:
    config = {**TINY, "total_iter": 12, "eval_every": 12, "save_every": 3, "print_iter": 1, **extra}
    agent = MVQVAEAgent(AgentConfig.from_dict(config), run_dir=tmp_path)
    agent.setup_from_file()  # the bundled sample: a few seconds at most
    return agent


def _checkpoints_are_finite(run: Path) -> list[Path]:
    found = sorted((run / "checkpoints").glob("*.pt"))
    for path in found:
        assert non_finite_tensors(torch.load(path, weights_only=True)) == [], path
    return found


# ------------------------------------------------------------------------------------------ the guard
class _WithBuffer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.register_buffer("ema", torch.zeros(2))


def test_guard_skips_on_the_device_restores_buffers_and_stops_after_the_limit() -> None:
    model = _WithBuffer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    guard = NonFiniteGuard(model, {"lr": 0.1, "commit": 0.02})

    def step(iteration: int, commit: float, total: float) -> None:
        guard.before_forward(iteration)
        optimizer.zero_grad()
        model.lin(torch.ones(1, 2)).sum().backward()
        if not math.isfinite(total):
            model.ema.fill_(math.nan)  # what an EMA codebook update with a NaN batch does
            model.lin.weight.grad.fill_(math.nan)
        terms = {"commit": torch.tensor(commit), "total": torch.tensor(total)}
        guard.apply(optimizer, iteration, terms, torch.tensor(1.0))

    step(1, 0.1, 1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adam = {k: v.clone() for k, v in optimizer.state[model.lin.weight].items()}
    for iteration in range(2, 2 + CONSECUTIVE_LIMIT - 1):
        step(iteration, 0.1, math.nan)
    guard.poll()
    assert guard.skipped == CONSECUTIVE_LIMIT - 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"a skipped step changed {key}"
    for key, value in optimizer.state[model.lin.weight].items():
        assert torch.equal(value, adam[key]), f"a skipped step changed AdamW's {key}"
    step(9, 0.1, math.nan)
    with pytest.raises(
        NonFiniteError,
        match=r"step 9: non-finite loss \(loss term 'commit' = 0.1 x weight inf\) for 5 consecutive",
    ):
        guard.poll({"commit": math.inf})
    step(10, 0.1, 1.0)
    guard.poll()  # a finite step ends the streak
    assert guard.skipped == CONSECUTIVE_LIMIT


def test_nan_rows_in_the_data_are_skipped_counted_and_training_goes_on(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    agent.sampler.data[100:140] = math.nan  # one clip's rows corrupted, as a damaged cache shard would be
    agent.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    skipped = [r["nonfinite_skipped"] for r in rows if r["split"] == "train"]
    assert skipped[-1] > 0 and agent.iteration == 12, skipped
    assert _checkpoints_are_finite(tmp_path)
    assert non_finite_tensors(agent.model.state_dict()) == []


def test_a_diverging_run_stops_naming_step_term_and_cause_without_a_bad_checkpoint(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    agent.scheduler.base_lrs = [1e30 for _ in agent.scheduler.base_lrs]  # beyond what the config allows
    with pytest.raises(NonFiniteError, match=r"step \d+: non-finite loss \(loss term '\w+'.*lower lr") as err:
        agent.fit()
    assert agent.iteration < 12
    assert "Likely cause" in str(err.value)
    _checkpoints_are_finite(tmp_path)


def test_set_lr_inf_is_refused_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["--out", str(tmp_path / "run"), *tiny_sets(5), "--set", "lr=inf"]
    assert train_vqvae.main(args) == 2
    message = capsys.readouterr().err
    assert "'lr'" in message and "inf" in message and "non-finite" in message
    assert not list((tmp_path / "run").glob("checkpoints/*.pt"))


def test_checkpoints_holding_nan_are_never_written(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()
    with pytest.raises(NonFiniteError, match=r"refusing to write checkpoint .*model\.w"):
        save_checkpoint({"model": {"w": torch.tensor([1.0, math.nan, 2.0])}}, path)
    assert path.read_bytes() == before, "the previous checkpoint is kept"


# ------------------------------------------------------------------------------------------ typed configs
@pytest.mark.parametrize(
    "key", ["loss_accel", "reset_threshold", "val_fraction", "gradient_clip", "lr", "commit", "gamma"]
)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_agent_config_refuses_non_finite_floats(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=rf"key '{key}': '{value}' is not a finite number.*allowed: "):
        AgentConfig.from_dict({key: value})


@pytest.mark.parametrize("key", ["top_p", "cond_drop", "dropout", "lr", "temperature"])
def test_prior_config_refuses_nan(key: str) -> None:
    with pytest.raises(ValueError, match=rf"key '{key}': 'nan' is not a finite number"):
        typed_from_dict(PriorConfig, {key: "nan"})


@pytest.mark.parametrize(
    ("key", "value"),
    [("nb_code", 1e12), ("batch_size", 1e9), ("num_threads", 1000000), ("width", 5000), ("depth", 10**6)],
)
def test_agent_config_bounds_sizes(key: str, value: float) -> None:
    with pytest.raises(
        ValueError, match=rf"key '{key}': {int(value)} is above the maximum .*allowed: \[\d+, \d+\]"
    ):
        AgentConfig.from_dict({key: value})


def test_prior_config_bounds_sizes() -> None:
    with pytest.raises(ValueError, match=r"key 'n_embd': 100000 is above the maximum"):
        typed_from_dict(PriorConfig, {"n_embd": 100000})


def test_fsq_levels_are_bounded_like_nb_code() -> None:
    with pytest.raises(ValueError, match="fsq_levels .* codes per stream"):
        AgentConfig.from_dict({"quantizer": "fsq", "fsq_levels": [256, 256, 256], "body_parts": None})


def test_an_absent_cuda_device_is_one_error_naming_it() -> None:
    missing = f"cuda:{torch.cuda.device_count() + 8}"
    with pytest.raises(DeviceUnavailable, match=rf"device '{missing}'.* does not exist"):
        _resolve_device(missing)


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    assert train_vqvae.main(["--out", str(out), *tiny_sets(2)]) == 0
    return out / "checkpoints" / "last.pt"


def _crafted(checkpoint: Path, out: Path, **hparams: object) -> Path:
    """The checkpoint with changed model_hparams and a recomputed checksum: passes the integrity check."""
    state = torch.load(checkpoint, weights_only=True)
    state.pop("sha256")
    state["model_hparams"] = {**state["model_hparams"], **hparams}
    state["sha256"] = state_digest(state)
    torch.save(state, out)
    return out


def test_crafted_width_is_refused_before_the_model_is_allocated(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    crafted = _crafted(tiny_checkpoint, tmp_path / "crafted.pt", width=5000)
    assert crafted.stat().st_size < 4 << 20
    # Address space capped at what the process already maps + 1 GiB: the width-5000 model needs ~6 GB, so
    # building it before checking the shapes ends in a MemoryError, not in the checkpoint's error.
    script = textwrap.dedent(
        f"""
        import resource, sys
        from motion_vqvae.agent import MVQVAEAgent
        pages = int(open("/proc/self/statm").read().split()[0])
        limit = pages * resource.getpagesize() + (1 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            MVQVAEAgent.from_checkpoint({str(crafted)!r}, device="cpu")
        except ValueError as exc:
            print("REFUSED", exc)
            sys.exit(0)
        sys.exit(1)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "model_hparams disagree with the stored tensors" in done.stdout and "5000" in done.stdout


def test_the_prior_trainer_stops_on_a_non_finite_loss_without_a_checkpoint(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import train_prior

    from motion_vqvae.data import sample_motion_path
    from motion_vqvae.prior import task as prior_task

    cross_entropy = prior_task.F.cross_entropy
    monkeypatch.setattr(prior_task.F, "cross_entropy", lambda *a, **k: cross_entropy(*a, **k) * math.inf)
    prior = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 12, "batch_size": 4, "warmup_iter": 1}
    prior.update(use_text=False, num_threads=1, total_iter=20, save_every=2, mirror_augment=False)
    sets = [arg for k, v in prior.items() for arg in ("--set", f"{k}={v}")]
    out = tmp_path / "prior"
    args = [
        "--tokenizer",
        str(tiny_checkpoint),
        "--motion_file",
        str(sample_motion_path()),
        "--out",
        str(out),
    ]
    assert train_prior.main([*args, *sets]) == 2
    message = capsys.readouterr().err
    assert f"step {CONSECUTIVE_LIMIT}: non-finite loss (loss term 'cross_entropy' = inf)" in message
    _checkpoints_are_finite(out)  # last.pt of step 4 holds the (finite) weights no skipped step changed


def test_prior_hparams_are_checked_against_its_tensors() -> None:
    hparams = {"nb_code": 8, "num_streams": 1, "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8}
    hparams.update(dropout=0.0, text_dim=0)
    weights = TokenGPT(**hparams).state_dict()
    check_model_shapes(TokenGPT, hparams, weights, "prior.pt")  # consistent: accepted
    with pytest.raises(ValueError, match=r"prior\.pt: model_hparams disagree with the stored tensors"):
        check_model_shapes(TokenGPT, {**hparams, "n_embd": 4096}, weights, "prior.pt")


RANKS_SCRIPT = """
import math, sys, torch
from pathlib import Path
from motion_vqvae.training import distributed
from motion_vqvae.training.nonfinite import NonFiniteGuard

with distributed.process_group() as here:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    guard = NonFiniteGuard(model, {})
    for iteration in (1, 2, 3):
        guard.before_forward(iteration)
        optimizer.zero_grad()
        loss = model(torch.ones(1, 2)).sum()
        loss.backward()
        if iteration == 2 and here.rank == 1:
            loss = loss * math.nan  # only rank 1 sees a non-finite loss
        guard.apply(optimizer, iteration, {"total": loss}, torch.tensor(1.0))
    guard.poll()
    # one file per rank: the two ranks' prints can interleave on one stdout line
    result = f"skipped={guard.skipped} weight={model.weight.sum().item():.7f}"
    (Path(sys.argv[1]) / f"rank{here.rank}.txt").write_text(result)
"""


def test_every_rank_skips_the_step_any_rank_finds_non_finite(tmp_path: Path) -> None:
    from motion_vqvae.training.distributed import torchrun_prefix

    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [*torchrun_prefix(2), str(script), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = sorted(path.read_text() for path in tmp_path.glob("rank*.txt"))
    assert len(lines) == 2 and lines[0] == lines[1], lines  # same decision, same weights
    assert lines[0].startswith("skipped=1 ")
