"""Route log records by the thread that emitted them: ``main.log``, ``inference.log``...

Used from the Hydra logging config (``conf/hydra/job_logging/ami.yaml``), so each run
directory holds one log per thread and a reader can follow one thread's story.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from typing_extensions import override


class ThreadFilter(logging.Filter):
    """Pass records from the named threads, or from every thread not excluded.

    Args:
        include: Thread names to pass; empty passes all but ``exclude``.
        exclude: Thread names to drop (e.g. main.log takes everything but the two
            background threads, library threads included).
    """

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        super().__init__()
        self.include = frozenset(include)
        self.exclude = frozenset(exclude)

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        """Whether the record's thread belongs to this log."""
        thread = record.threadName or ""
        if self.include:
            return thread in self.include
        return thread not in self.exclude
