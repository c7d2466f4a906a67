"""Stop requests by signal: Ctrl-C, SIGTERM and SIGHUP end training at a step boundary, never inside one.

``docker stop``, systemd, SLURM and ``timeout`` send SIGTERM; a closed terminal sends SIGHUP. Python's
default would raise ``KeyboardInterrupt`` (SIGINT) mid-step or kill the process outright (SIGTERM,
SIGHUP); both lose or corrupt the state. Here the first signal only sets a flag that the loop reads
between steps, so the saved ``last.pt`` is a state an uninterrupted run also passes through and
``--resume`` continues it bit for bit. A second signal aborts at once without saving.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by a signal after saving ``last.pt`` at a step boundary."""

    def __init__(self, signum: int, iteration: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} at iteration {iteration}")
        self.signum = signum
        self.iteration = iteration

    @property
    def exit_code(self) -> int:
        """The shell convention for death by a signal (130 for Ctrl-C)."""
        return 128 + self.signum


class StopRequests:
    """Context manager: while active, the first stop signal is recorded in ``signum``; a second aborts."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborted without saving")
        self.signum = signum  # no logging here: the handler may run while the logging lock is held

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # handlers live in the main thread only
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
