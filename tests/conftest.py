"""Fixtures shared by every test folder; reusable parts live in runtime_parts.py."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Give the suite Ctrl+C as a terminal would, however it was launched.

    A suite started in the background of a non-interactive shell (``nohup pytest &``,
    some CI runners) inherits SIGINT ignored: Python then installs no KeyboardInterrupt
    handler, every child process inherits the ignoring, and the tests of Ctrl+C (the
    console prompt, sweeps, a run's clean stop) fail however right the code is. Python's
    own handler here makes the children start with the default action again.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def keep_main_thread_name() -> Iterator[None]:
    """MainThread.run renames the calling thread to "main"; restore it for pytest."""
    thread = threading.current_thread()
    name = thread.name
    yield
    thread.name = name
