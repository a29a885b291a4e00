"""Fixtures shared by every test folder; reusable parts live in runtime_parts.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def keep_main_thread_name() -> Iterator[None]:
    """MainThread.run renames the calling thread to "main"; restore it for pytest."""
    thread = threading.current_thread()
    name = thread.name
    yield
    thread.name = name
