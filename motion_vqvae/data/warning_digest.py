"""One line per kind of data warning instead of one per clip, with every message kept in a file.

It lives with the readers whose warnings it gathers, so that the preprocess worker (training room) and the
commands both use it without the training room importing the command-line helpers.
"""

from __future__ import annotations

import logging
from pathlib import Path


class WarningDigest(logging.Handler):
    """Collects the warnings of one logger (e.g. the data readers) instead of printing each one.

    A dataset with a glitch in every clip produced one long warning per clip; a person needs one line per
    kind of problem and where to read the rest. Use as a context manager, then :meth:`report`.
    """

    def __init__(self, logger: str = "motion_vqvae.data") -> None:
        super().__init__(logging.WARNING)
        self.logger = logging.getLogger(logger)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> WarningDigest:
        self.logger.addHandler(self)
        self._propagate, self.logger.propagate = self.logger.propagate, False
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.propagate = self._propagate

    def report(self, details: Path | None, log: logging.Logger, width: int = 160) -> None:
        """Log one line per kind of warning (with its count); write every message to ``details``."""
        if not self.records:
            return
        kinds: dict[tuple[str, str], list[logging.LogRecord]] = {}
        for record in self.records:
            kinds.setdefault((record.name, str(record.msg)), []).append(record)
        for group in kinds.values():
            text = group[0].getMessage()
            text = text if len(text) <= width else text[: width - 3] + "..."
            log.warning("%s", text if len(group) == 1 else f"{len(group)} warnings like: {text}")
        if details is not None:
            details.write_text("".join(r.getMessage() + "\n" for r in self.records))
            log.warning("all %d data warnings are in %s", len(self.records), details)
