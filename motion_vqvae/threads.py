"""How many CPU threads torch should use: chosen by the command-line entry points, never by library code.

Torch starts as many threads as the machine has cores. On a shared 2-core machine whose other core is busy
that trained 36 steps in three minutes where one thread trained 1,106 (every operation waits for a thread
that is not running); on an idle one two threads train 1.5x faster than one. So the default adapts: an
explicit ``num_threads`` wins, otherwise :func:`choose_threads` counts the cores other processes left free,
measured from ``/proc/stat`` (not the 1-minute load average, which still holds jobs that ended seconds ago).
:class:`ThreadChoice` applies the choice and re-checks it while a run trains (the budget fitter asks
before each re-fit), because the neighbours come and go.

Only entry points call this module's setters: importing the library, loading a ``Tokenizer`` or building a
``Trainer`` leaves ``torch.get_num_threads()`` as the caller set it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

MEASURE_SECONDS = 0.5
"""How long :func:`choose_threads` watches the machine before choosing (a start-up cost paid once)."""
SPARE_CORE = 0.7
"""A core counts as free when at least this much of it is idle (the rest of the idle share is noise)."""


@dataclass(frozen=True)
class CpuClock:
    """A reading of CPU time: this process's (all its threads) and every process's on the machine.

    Two readings give the cores other processes kept busy in between, measured rather than averaged: the
    1-minute load average still carries a job that ended seconds ago, and this run's own threads.
    """

    wall: float
    own: float  # CPU seconds of this process
    everyone: float | None  # CPU seconds of every process (from /proc/stat); None where it is not readable

    @classmethod
    def read(cls) -> CpuClock:
        return cls(time.monotonic(), time.process_time(), _machine_cpu_seconds())

    def others_since(self, earlier: CpuClock) -> float | None:
        """Cores other processes used on average since ``earlier``; None when it cannot be measured."""
        wall = self.wall - earlier.wall
        if self.everyone is None or earlier.everyone is None or wall < 0.5:
            return None
        return max(0.0, (self.everyone - earlier.everyone - (self.own - earlier.own)) / wall)


def _machine_cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot (Linux ``/proc/stat``: user to steal, not idle)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (float(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Machine:
    """The CPU share a run can count on: cores it may run on, and the load others put on them."""

    cores: int
    load: float  # cores that other processes keep busy

    @classmethod
    def measure(cls, since: CpuClock | None = None) -> Machine:
        """The machine now; with ``since``, the load others put on it from then on, measured.

        Without a measurement (no ``/proc/stat``, or no earlier reading) it falls back to the 1-minute load
        average, which also counts this run's own threads and jobs that have just ended.
        """
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        others = None if since is None else CpuClock.read().others_since(since)
        if others is None:
            others = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return cls(cores, others)

    @property
    def free_cores(self) -> float:
        """Cores left over by the load, at least one (a run always gets a share of one)."""
        return max(1.0, self.cores - self.load)


def threads_for(machine: Machine) -> int:
    """Threads that fit ``machine``: one per free core (see :data:`SPARE_CORE`), at least one."""
    return max(1, min(machine.cores, int(machine.cores - machine.load + 1 - SPARE_CORE)))


def choose_threads(requested: int | None, measure_s: float = MEASURE_SECONDS) -> int:
    """The torch thread count for this run: ``requested`` (``num_threads`` > 0) if given, else one per core
    that other processes left free over ``measure_s`` seconds (logged with the reason)."""
    if requested:
        log.info("threads: %d torch thread(s), as num_threads asks", requested)
        return requested
    start = CpuClock.read()
    time.sleep(measure_s)
    machine = Machine.measure(since=start)
    threads = threads_for(machine)
    log.info(
        "threads: %d torch thread(s): %d core(s), other processes busy on %.1f of them "
        "(set num_threads to choose yourself)",
        threads,
        machine.cores,
        machine.load,
    )
    return threads


class ThreadChoice:
    """The command line's thread policy for one run: chosen at start, re-checked on request.

    :meth:`recheck` measures the other processes' load since the previous check (no waiting: the run's
    own CPU time is taken out) and changes the torch thread count when the free cores changed.
    """

    def __init__(self, requested: int | None, processes: int = 1) -> None:
        self.requested = requested or None
        self.processes = processes  # training processes sharing this machine (torchrun's world size)
        self.threads = self._share(choose_threads(self.requested))
        self._clock = CpuClock.read()
        _set_torch_threads(self.threads)

    def recheck(self) -> bool:
        """True when the thread count changed (the step times measured before no longer hold)."""
        if self.requested:
            return False
        now = CpuClock.read()
        others = now.others_since(self._clock)
        self._clock = now
        if others is None:
            return False
        cores = Machine.measure().cores
        threads = self._share(threads_for(Machine(cores, others)))
        if threads == self.threads:
            return False
        log.info(
            "threads: %d -> %d torch thread(s): other processes now busy on %.1f of %d core(s)",
            self.threads,
            threads,
            others,
            cores,
        )
        self.threads = threads
        _set_torch_threads(threads)
        return True

    def _share(self, threads: int) -> int:
        """An automatic count split among the processes started together (they measured the same cores)."""
        if self.requested or self.processes <= 1:
            return threads
        shared = max(1, threads // self.processes)
        if shared != threads:
            log.info("threads: %d per process for %d processes", shared, self.processes)
        return shared


def _set_torch_threads(threads: int) -> None:
    import torch  # here, so the robot-free tools that only choose a count do not pay for torch

    torch.set_num_threads(threads)
