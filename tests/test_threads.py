"""Thread counts: chosen by the command line from the free cores, never by library code."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest
import torch

from motion_vqvae import threads
from motion_vqvae.threads import CpuClock, Machine, ThreadChoice, choose_threads, threads_for

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _tiny_tokenizer import TINY, train_tiny_tokenizer  # noqa: E402


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_free_cores_decide_the_default() -> None:
    assert threads_for(Machine(cores=2, load=0.05)) == 2  # an idle 2-core machine: both cores
    assert threads_for(Machine(cores=2, load=1.0)) == 1  # a neighbour holds one
    assert threads_for(Machine(cores=2, load=3.0)) == 1  # never fewer than one
    assert threads_for(Machine(cores=16, load=0.5)) == 15


def test_an_explicit_count_wins_without_measuring(monkeypatch, caplog) -> None:
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("measured although num_threads was given"))
    with caplog.at_level(logging.INFO, logger="motion_vqvae.threads"):
        assert choose_threads(3) == 3
    assert "as num_threads asks" in caplog.text


def test_the_measured_choice_is_logged_with_its_reason(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="motion_vqvae.threads"):
        chosen = choose_threads(None, measure_s=0.5)
    assert 1 <= chosen <= Machine.measure().cores
    assert f"threads: {chosen} torch thread(s)" in caplog.text and "other processes busy on" in caplog.text


def test_recheck_follows_a_neighbour_that_comes_and_goes(monkeypatch, keep_threads) -> None:
    readings = iter(
        [
            CpuClock(wall=0.0, own=0.0, everyone=0.0),  # at start
            CpuClock(wall=10.0, own=20.0, everyone=30.0),  # others used 1 core over 10 s
            CpuClock(wall=20.0, own=30.0, everyone=40.5),  # others used 0.05 of a core
            *[CpuClock(wall=30.0, own=30.0, everyone=40.5)] * 2,  # the two choices made below
        ]
    )
    monkeypatch.setattr(threads, "choose_threads", lambda requested: 2)
    monkeypatch.setattr(CpuClock, "read", classmethod(lambda cls: next(readings)))
    monkeypatch.setattr(Machine, "measure", classmethod(lambda cls, since=None: Machine(2, 0.0)))
    choice = ThreadChoice(None)
    assert choice.threads == torch.get_num_threads() == 2
    assert choice.recheck() and choice.threads == torch.get_num_threads() == 1
    assert choice.recheck() and choice.threads == torch.get_num_threads() == 2
    assert not ThreadChoice(4).recheck(), "an explicit count is never changed"
    assert ThreadChoice(None, processes=2).threads == 1, "torchrun's processes share the measured cores"


def test_library_code_leaves_the_thread_count_alone(tmp_path: Path, keep_threads) -> None:
    from motion_vqvae.agent import MVQVAEAgent
    from motion_vqvae.data import sample_motion_path

    checkpoint = train_tiny_tokenizer(tmp_path / "run", str(sample_motion_path()), iters=2)
    torch.set_num_threads(3)
    agent = MVQVAEAgent({**TINY, "num_threads": 1, "total_iter": 2}, run_dir=tmp_path / "lib")
    agent.setup_from_file()  # builds the Trainer too
    agent.fit(fit_schedule=False)
    loaded = MVQVAEAgent.from_checkpoint(checkpoint, device="cpu")
    assert torch.get_num_threads() == 3
    assert loaded.trainer is None, "loading for inference builds no optimizer"


def test_the_budget_fitter_rechecks_threads_before_a_refit() -> None:
    from types import SimpleNamespace

    from motion_vqvae.config_loader import AgentConfig
    from motion_vqvae.training.budget import BudgetFitter
    from motion_vqvae.training.schedule import lr_factor_fn

    cfg = AgentConfig.from_dict({"total_iter": 12000})
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    owner = SimpleNamespace(
        cfg=cfg, iteration=0, scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(cfg))
    )
    asked = []
    fitter = BudgetFitter(
        owner, time.monotonic() + 100.0, before_refit=lambda: asked.append(owner.iteration) or True
    )
    for _ in range(50):
        owner.iteration += 1
        fitter.after_step(1.0)
    assert asked == [25, 50], "asked before each re-fit, not before the first fit"
    assert fitter.times == [], "the step times of the old thread count are dropped"
