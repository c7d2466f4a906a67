"""What a first run should be told: how fast it trains and what slows it, and whether it only memorises.

A new user's first run on their own data trained 36 steps in three minutes because torch started as many
threads as the machine has cores while other processes held them; ``--set num_threads=1`` trained 1,106.
Nothing said so. Nor did anything comment on 68 mm held-out error against 5 mm on the training clips, or on
a run with no held-out clip at all. These checks cost nothing per step: the speed is measured over the
first steps only, the rest runs once at the start or the end of a run.
"""

from __future__ import annotations

import logging

from motion_vqvae.data.motion import Motion
from motion_vqvae.threads import CpuClock, Machine

log = logging.getLogger(__name__)

OVERSUBSCRIBED_SLACK = 0.5
"""Threads may exceed the free cores by this much before it is called oversubscription (load is noisy)."""
MEMORISING_RATIO = 3.0
"""Held-out error this many times the training clips' error (and ``MEMORISING_MIN_GAP_MM`` above it) is
reported as memorising: at that gap the next minutes are better spent on data than on steps."""
MEMORISING_MIN_GAP_MM = 10.0


def oversubscription(threads: int, machine: Machine) -> str | None:
    """Why ``threads`` torch threads will be slow on ``machine``, with the fix; None when they fit.

    Torch's CPU kernels split every operation across all their threads and wait for the slowest; when the
    threads outnumber the cores left free, each operation waits for a thread that is not running, and the
    step time grows tenfold or more instead of shrinking.
    """
    if threads <= machine.free_cores + OVERSUBSCRIBED_SLACK:
        return None
    fit = max(1, int(machine.free_cores))
    return (
        f"{threads} torch threads but only about {machine.free_cores:.1f} free core(s) ({machine.cores} "
        f"core(s), load {machine.load:.1f}): the threads wait on each other and training runs far below "
        f"this machine's speed; restart with --set num_threads={fit} (num_threads: {fit} in the config)"
    )


class SpeedCheck:
    """Measures steps per second over the first steps of a run, reports it once, warns when it is starved.

    ``after_step`` is called with each step's duration until it returns True; the loop then drops it, so a
    long run pays for it on its first few dozen steps only.
    """

    UNTIMED_STEPS = 3  # first steps pay one-off costs (allocation, thread start-up)
    TIMED_STEPS, TIMED_SECONDS = 20, 10.0

    def __init__(self, device: str, threads: int, batch_size: int) -> None:
        self.device, self.threads, self.batch_size = device, threads, batch_size
        self.seen = 0
        self.seconds = 0.0
        self.clock: CpuClock | None = None  # read when the timed steps start

    def after_step(self, seconds: float) -> bool:
        """Count one step; True once the rate has been reported."""
        self.seen += 1
        if self.seen <= self.UNTIMED_STEPS:
            if self.seen == self.UNTIMED_STEPS:
                self.clock = CpuClock.read()
            return False
        self.seconds += seconds
        timed = self.seen - self.UNTIMED_STEPS
        if timed < self.TIMED_STEPS and not (timed >= 3 and self.seconds >= self.TIMED_SECONDS):
            return False
        self.report(timed / self.seconds)
        return True

    def report(self, steps_per_s: float, machine: Machine | None = None) -> str | None:
        """Log the rate; warn (and return the warning) when CPU threads outnumber the free cores."""
        log.info(
            "speed: %.1f steps/s (%.0f windows/s) on %s",
            steps_per_s,
            steps_per_s * self.batch_size,
            self.device if self.device != "cpu" else f"cpu, {self.threads} torch thread(s)",
        )
        if self.device != "cpu":
            return None
        if machine is None:
            machine = Machine.measure(since=self.clock)
        warning = oversubscription(self.threads, machine)
        if warning is not None:
            log.warning("slow: %.1f steps/s; %s", steps_per_s, warning)
        return warning


def memorising(train_mm: float, val_mm: float) -> str | None:
    """What to do when held-out error is far above the training clips' error; None when it is not."""
    if not (val_mm > MEMORISING_RATIO * train_mm and val_mm - train_mm > MEMORISING_MIN_GAP_MM):
        return None
    return (
        f"held-out error {val_mm:.1f} mm is {val_mm / max(train_mm, 1e-9):.0f}x the training clips' "
        f"{train_mm:.1f} mm: the model fits its training clips far better than motion it has not seen. "
        "More data helps most; else a smaller model (--set nb_code=128 --set width=64) or more augmentation "
        "(--set mirror_augment=true --set speed_augment=[0.8,1.25])"
    )


def no_validation(num_train_clips: int) -> str:
    """The warning for a run without held-out clips: nothing measures whether it generalises."""
    fix = (
        "add clips (val_fraction holds out a share of them)"
        if num_train_clips < 2
        else "hold one out with --set val_clips=[NAME], or raise --set val_fraction"
    )
    return (
        f"0 validation clips ({num_train_clips} training clip(s)): no held-out error is measured and best.pt "
        f"is just the latest checkpoint; {fix}"
    )


def training_sample(motions: list[Motion], frames: int) -> list[Motion]:
    """Training clips, in order, until they hold ``frames`` frames: scored beside the held-out clips at the
    end of a run, at about the cost of a validation."""
    chosen, total = [], 0
    for motion in motions:
        if total >= frames:
            break
        chosen.append(motion)
        total += motion.num_frames
    return chosen
