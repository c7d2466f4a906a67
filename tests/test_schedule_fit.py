"""Short runs just work: warmup fits inside total_iter, and a time budget shapes the schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from motion_vqvae.commands.train import main as train_main
from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.training.schedule import effective_warmup, fitted_total_iter, lr_factor_fn

TINY = ["width=16", "depth=1", "nb_code=32", "code_dim=16", "output_emb_width=16", "window_size=16"]
TINY += ["batch_size=16", "num_threads=1", "eval_every=100000", "save_every=100000"]


def test_total_iter_200_needs_no_warmup_setting() -> None:
    cfg = AgentConfig.from_dict({"total_iter": 200})  # warmup_iter stays at its default, 300
    assert effective_warmup(cfg) == 50
    factor = lr_factor_fn(cfg)
    assert factor(0) == pytest.approx(1 / 50) and factor(49) == pytest.approx(1.0)
    assert factor(199) == pytest.approx(cfg.gamma, abs=1e-3), "the cosine reaches its floor at the end"
    assert effective_warmup(AgentConfig.from_dict({})) == 300, "the default schedule is unchanged"


def test_fitted_total_iter_reserves_validation_and_never_grows() -> None:
    cfg = AgentConfig.from_dict({"total_iter": 12000, "eval_every": 500})
    assert fitted_total_iter(cfg, 20, seconds_left=100.0, step_s=0.1, val_s=0.0) == 20 + 950
    with_val = fitted_total_iter(cfg, 20, seconds_left=100.0, step_s=0.1, val_s=5.0)
    assert with_val == 20 + int((95 - 10) / (0.1 + 5 / 500))
    assert fitted_total_iter(cfg, 20, seconds_left=1e6, step_s=0.1, val_s=0.0) == 12000


def test_time_budget_lowers_total_iter_so_the_schedule_anneals(tmp_path: Path) -> None:
    out = tmp_path / "budget"
    args = ["--out", str(out), "--time-budget", "0.1", *[a for s in TINY for a in ("--set", s)]]
    assert train_main(args) == 0
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    cfg = state["config"]
    assert cfg["total_iter"] < 12000, "the budget fitted total_iter"
    assert state["iteration"] >= 0.8 * cfg["total_iter"], (state["iteration"], cfg["total_iter"])
    lr = state["optimizer"]["param_groups"][0]["lr"]
    assert lr < 0.3 * cfg["lr"], f"the cosine annealed within the budget (lr {lr} of peak {cfg['lr']})"
    assert "total_iter: " + str(cfg["total_iter"]) in (out / "config.yaml").read_text()


def test_budget_fitter_follows_a_machine_whose_load_changes() -> None:
    import time
    from types import SimpleNamespace

    from motion_vqvae.training.budget import BudgetFitter

    cfg = AgentConfig.from_dict({"total_iter": 12000})
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    agent = SimpleNamespace(
        cfg=cfg, iteration=0, scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(cfg))
    )
    fitter = BudgetFitter(agent, deadline=time.monotonic() + 100.0)
    for _ in range(23):  # a busy machine: 1 s per step
        agent.iteration += 1
        fitter.after_step(1.0)
    slow = agent.cfg.total_iter
    assert 100 < slow < 120
    for _ in range(27):  # the load goes away
        agent.iteration += 1
        fitter.after_step(0.01)
    assert agent.cfg.total_iter > 50 * slow, "the schedule grows back when steps get faster"
    assert agent.scheduler.lr_lambdas[0](agent.cfg.total_iter - 1) == pytest.approx(cfg.gamma, abs=1e-3)
