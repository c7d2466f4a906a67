"""Data-parallel training: ``torchrun --nproc_per_node=2`` on this CPU equals one process with the same batch.

The bar of issue 14: 20 iterations on two processes leave the same model state in ``last.pt`` (every
parameter and buffer within 1e-4) as one process with the same global batch and seed, for RVQ and for
one-level ``ema_reset`` codebooks on two body parts whose dead codes are re-seeded during those steps; a
checkpoint resumes under the other world size. Real runs of ``scripts/train_vqvae.py`` on the
bundled sample motion, a small model, a constant learning rate (so a run extended with ``--set total_iter``
follows the same schedule as a straight one).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny_tokenizer import set_args

from motion_vqvae.models.quantizers import VectorQuantizer
from motion_vqvae.training import distributed
from motion_vqvae.training.distributed import torchrun_prefix
from motion_vqvae.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import train_vqvae  # noqa: E402

MOTION = str(REPO / "motion_vqvae" / "assets" / "sample_motion.npy")
TRAIN_SCRIPT = str(REPO / "scripts" / "train_vqvae.py")
SMALL = {
    "width": 32,
    "depth": 1,
    "code_dim": 16,
    "output_emb_width": 16,
    "nb_code": 64,
    "num_quantizers": 3,
    "batch_size": 32,  # global: 16 windows per process
    "window_size": 16,
    "warmup_iter": 0,
    "lr_scheduler": "constant",
    # Adam divides each gradient element by its own RMS, so an element whose gradients are ~1e-7 (seen in
    # the upper-body encoder) turns the 1e-7 summation-order noise between one batch sum and two half-batch
    # sums into a step of order lr: at the default 2e-3, twenty steps drift 2.3e-4 on an AMD EPYC while
    # every gradient agrees to 6e-5 relative. At 2e-4 the same run agrees to 4e-7, and what the test is
    # for (one global batch, one random draw, reduced EMA statistics) stays exact.
    "lr": 2e-4,
    "num_threads": 1,
    "print_iter": 5,
    "eval_every": 10,  # rank 0 validates mid-run while the other rank waits
    "save_every": 100,
}
VARIANTS = {
    "rvq": {},
    # mu 0.9: an unused code falls below the reset threshold within 3 steps, so re-seeding happens
    "ema_reset_parts": {"quantizer": "ema_reset", "mu": 0.9, "body_parts": "upper_lower"},
}
TOLERANCE = 1e-4


def _args(out: Path, iters: int, **extra: object) -> list[str]:
    values = {**SMALL, "total_iter": iters, **extra}
    sets = set_args(values)
    return ["--motion_file", MOTION, "--out", str(out), *sets]


def _torchrun(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [*torchrun_prefix(2), TRAIN_SCRIPT, *args], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def _state(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.pt", weights_only=True)


def _assert_same_state(one: Path, two: Path, iteration: int) -> float:
    a, b = _state(one), _state(two)
    assert a["iteration"] == b["iteration"] == iteration
    assert a["model"].keys() == b["model"].keys()
    diffs = {k: (v.double() - b["model"][k].double()).abs().max().item() for k, v in a["model"].items()}
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= TOLERANCE, f"{worst} differs by {diffs[worst]:.2e}"
    assert torch.equal(a["sampler"]["generator"], b["sampler"]["generator"])  # one global batch per step
    return diffs[worst]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One process, 20 iterations of the RVQ variant."""
    out = tmp_path_factory.mktemp("ddp") / "one"
    assert train_vqvae.main(_args(out, 20)) == 0
    return out


@pytest.fixture(scope="module")
def two_rvq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two processes, 20 iterations of the RVQ variant."""
    out = tmp_path_factory.mktemp("ddp") / "two"
    _torchrun(_args(out, 20))
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_two_processes_equal_one(
    variant: str, reference: Path, two_rvq: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = reference, two_rvq
    if variant != "rvq":
        reseeded = []
        original = VectorQuantizer._reseed

        def counted(self: VectorQuantizer, dead: torch.Tensor, *rest: object) -> None:
            reseeded.append(int(dead.sum()))
            original(self, dead, *rest)

        monkeypatch.setattr(VectorQuantizer, "_reseed", counted)
        one = tmp_path / "one"
        assert train_vqvae.main(_args(one, 20, **VARIANTS[variant])) == 0
        assert sum(reseeded) > 0, "no dead code was re-seeded: the reset sync went untested"
        two = tmp_path / "two"
        _torchrun(_args(two, 20, **VARIANTS[variant]))
    _assert_same_state(one, two, 20)
    metrics = (two / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == len(set(metrics)) == 20 // 5 + 2  # rank 0 alone logs: 4 train rows, 2 val rows


DEFAULT_TOKENIZER = {  # the shipped architecture and quantizer (RVQ 6 x 512 per body part), a small batch
    "batch_size": 16,  # global: 8 windows per process; 128 encodings per part seed 512 codes (jittered)
    "total_iter": 20,
    "warmup_iter": 0,
    "lr_scheduler": "constant",
    # See SMALL: Adam turns 1e-7 summation noise in near-zero gradients into steps of order lr; at 2e-4 a
    # few decoder weights of this larger model drift 1.8e-4 while every quantizer tensor agrees to 4e-7.
    # At 5e-5 the whole state agrees to 4e-7, and the bug this test pins (2 processes off by whole code
    # hits, 1.8 in an EMA count) shows at any lr.
    "lr": 5e-5,
    "num_threads": 1,
    "print_iter": 5,
}


def test_two_processes_equal_one_on_the_default_tokenizer(tmp_path: Path) -> None:
    """Issue 19's bar: every tensor of last.pt within 1e-4 after 20 steps of the default tokenizer.

    Two processes differed from one by whole code hits (an RVQ level's EMA count by 6.88): the first
    batch's 128 encodings seeded 512 codes as copies jittered by 0.01/sqrt(D), copies whose distances
    float32 could not tell apart, so the 1e-7 between one process's and two processes' encodings picked
    another copy. The random draws themselves (quantizer dropout, dead-code candidates) are made once for
    the global batch.
    """
    sets = set_args(DEFAULT_TOKENIZER)
    one, two = tmp_path / "one", tmp_path / "two"
    assert train_vqvae.main(["--motion_file", MOTION, "--out", str(one), *sets]) == 0
    _torchrun(["--motion_file", MOTION, "--out", str(two), *sets])
    hparams = _state(one)["model_hparams"]
    assert (hparams["quantizer"], hparams["num_quantizers"], hparams["nb_code"], len(hparams["parts"])) == (
        "rvq",
        6,
        512,
        2,
    ), "the shipped defaults changed: keep this test on them"
    _assert_same_state(one, two, 20)


def test_one_process_run_resumes_under_two(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-process run stopped by SIGTERM at iteration 10 finishes under torchrun as if never stopped."""
    original = Trainer.step

    def step(trainer: Trainer, *rest: object) -> object:
        if trainer.iteration == 9:  # a real signal: the loop stops after this step, at iteration 10
            os.kill(os.getpid(), signal.SIGTERM)
        return original(trainer, *rest)

    monkeypatch.setattr(Trainer, "step", step)
    out = tmp_path / "split"
    assert train_vqvae.main(_args(out, 20)) == 128 + signal.SIGTERM
    assert _state(out)["iteration"] == 10
    _torchrun(["--motion_file", MOTION, "--out", str(out), "--resume"])
    _assert_same_state(reference, out, 20)


def test_two_process_checkpoint_resumes_in_one(reference: Path, two_rvq: Path, tmp_path: Path) -> None:
    """The two-process run and the one-process run, both continued in one process to 25, stay equal."""
    for name, source in (("one", reference), ("two", two_rvq)):
        shutil.copytree(source, tmp_path / name)
        resume = ["--motion_file", MOTION, "--out", str(tmp_path / name), "--resume"]
        assert train_vqvae.main([*resume, "--set", "total_iter=25"]) == 0
    _assert_same_state(tmp_path / "one", tmp_path / "two", 25)


def test_global_batch_must_split_evenly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    assert distributed.local_batch(30) == slice(10, 20)
    with pytest.raises(ValueError, match=r"batch_size=32 is the global batch .* \(3\).*batch_size=30"):
        distributed.local_batch(32)


def test_training_step_reads_nothing_back_to_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between logging steps our code never turns a tensor into a Python value (each would sync a GPU)."""
    from motion_vqvae.agent import MVQVAEAgent
    from motion_vqvae.config_loader import AgentConfig

    for variant in VARIANTS.values():
        agent = MVQVAEAgent(AgentConfig.from_dict({**SMALL, **variant}), run_dir=tmp_path)
        agent.setup_from_file()
        agent.trainer.step()  # the first step seeds the codebooks once
        reads: list[str] = []
        with monkeypatch.context() as patch:
            for name in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__"):
                original = getattr(torch.Tensor, name)

                def counted(
                    self: torch.Tensor, *a: object, _original=original, _name=name, _reads=reads
                ) -> object:
                    caller = sys._getframe(1).f_code.co_filename
                    if f"{os.sep}motion_vqvae{os.sep}" in caller:
                        _reads.append(f"{_name} in {caller}:{sys._getframe(1).f_lineno}")
                    return _original(self, *a)

                patch.setattr(torch.Tensor, name, counted)
            for _ in range(3):
                agent.trainer.step()
        assert reads == [], reads
