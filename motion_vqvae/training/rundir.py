"""Run directories that are never lost or mixed: refuse to reuse one silently, lock it, resume it faithfully.

A run directory belongs to one run: training into one that already holds a run needs ``--resume`` (continue
it) or ``--overwrite`` (replace it), and a lock (``.lock``, ``flock``) refuses a second training into a
directory in use, whose metrics would otherwise interleave. ``--resume`` continues the checkpoint's own
config: only the keys in :data:`RESUMABLE_KEYS` (schedule, logging, device) may change, and each change is
logged; anything that would change the model or the data is refused.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.errors import UserError
from motion_vqvae.typed_fields import typed_from_dict

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "split.json", "metrics.jsonl", "checkpoints", "data_warnings.log", "wandb")
"""What training writes into a run directory; ``--overwrite`` removes these and nothing else."""

RESUMABLE_KEYS = frozenset(
    {
        "total_iter",
        "warmup_iter",
        "lr",
        "lr_scheduler",
        "lr_milestones",
        "gamma",
        "save_every",
        "eval_every",
        "print_iter",
        "use_wandb",
        "wandb_project",
        "device",
        "amp",
        "compile",
        "num_threads",
        "motion_file",  # the path may move; the data itself is compared by fingerprint
    }
)


class RunDirectory:
    """The ``--out`` of a training run."""

    def __init__(self, path: str | Path, files: tuple[str, ...] = RUN_FILES) -> None:
        self.path = Path(path)
        self.files = files  # what this kind of run writes (the prior's run has its own list)
        self.last = self.path / "checkpoints" / "last.pt"

    def existing_files(self) -> list[str]:
        return [name for name in self.files if (self.path / name).exists()]

    def check(self, resume: bool, overwrite: bool) -> None:
        """Refuse a directory that holds a run unless told what to do with it; refuse --resume of nothing."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} is a file, not a directory; choose another --out")
        if resume and overwrite:
            raise UserError("--resume and --overwrite contradict each other; pick one")
        if resume and not self.last.is_file():
            raise UserError(f"--resume: {self.last} does not exist; train without --resume first")
        found = self.existing_files()
        if found and not (resume or overwrite):
            raise UserError(
                f"--out {self.path} already holds a run ({', '.join(found)}); continue it with --resume, "
                "replace it with --overwrite, or choose another --out"
            )

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``.lock`` for the whole run; a second process gets a UserError naming the holder."""
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path / ".lock"
        handle = lock_path.open("a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise UserError(
                    f"--out {self.path} is in use by a training run ({holder}); wait for it to finish, "
                    "stop it, or choose another --out"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            try:
                yield
            except BaseException:
                if created and not self.existing_files():
                    shutil.rmtree(self.path, ignore_errors=True)  # nothing of ours written: no trace
                raise
        finally:
            handle.close()

    def clear(self) -> None:
        """``--overwrite``: remove the previous run's files (only those training writes)."""
        for name in self.existing_files():
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        log.info("--overwrite: removed the previous run in %s", self.path)

    def truncate_metrics(self, iteration: int) -> None:
        """Drop metrics rows past the checkpoint (written after the last save of a killed run)."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return
        lines = path.read_text().splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line).get("iteration", 0) <= iteration]
        if len(kept) != len(lines):
            path.write_text("".join(line + "\n" for line in kept))
            log.info("metrics.jsonl: dropped %d rows past iteration %d", len(lines) - len(kept), iteration)


def resume_config(
    saved: dict[str, Any],
    requested: dict[str, Any],
    checkpoint: Path,
    schema: type = AgentConfig,
    resumable: frozenset[str] = RESUMABLE_KEYS,
) -> Any:
    """The checkpoint's config with ``requested`` changes that resuming allows; others are refused.

    ``schema`` is the run's typed config (the tokenizer's by default; the prior passes its own) and
    ``resumable`` the keys it may change.
    """
    base = typed_from_dict(schema, saved, source=str(checkpoint))
    candidate = typed_from_dict(schema, {**saved, **requested}, source="--set")
    old, new = dataclasses.asdict(base), dataclasses.asdict(candidate)
    changed = sorted(k for k in new if new[k] != old[k])
    refused = [k for k in changed if k not in resumable]
    if refused:
        described = ", ".join(f"{k}={new[k]!r} (checkpoint: {old[k]!r})" for k in refused)
        raise UserError(
            f"--resume continues {checkpoint} with its own config; {described} would change the model or "
            f"the data. Drop those settings, or start a new run with another --out. Keys that may change "
            f"on resume: {', '.join(sorted(resumable))}"
        )
    for key in changed:
        log.info("resume: %s changed from %r to %r", key, old[key], new[key])
    return candidate
