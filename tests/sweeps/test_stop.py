"""The stop file: one request reaches every job, and a running job is interrupted by it."""

from __future__ import annotations

from pathlib import Path

from ami.sweeps.stop import request_stop, stop_path, stop_reason


def test_the_first_stop_request_is_kept_with_its_reason(tmp_path: Path) -> None:
    assert stop_reason(tmp_path) is None
    request_stop(tmp_path, "job #0 was interrupted (Ctrl+C)")
    request_stop(tmp_path, "SIGTERM to the sweep's process")
    assert stop_reason(tmp_path) == "job #0 was interrupted (Ctrl+C)"


def test_a_stop_file_made_by_hand_stops_the_sweep_too(tmp_path: Path) -> None:
    stop_path(tmp_path).touch()  # `touch <sweep dir>/STOP`
    assert stop_reason(tmp_path) == "stop requested"
