"""The API's replies as lines: in the run's own words, tolerant of fields it lacks."""

from __future__ import annotations

import pytest

from ami.console import summary
from ami.console.client import parse_url


def test_a_failed_hung_or_silent_thread_says_so() -> None:
    text = summary.status_text(
        {
            "status": "stopping",
            "uptime_seconds": 125.0,
            "threads": {
                "inference": {
                    "state": "running",
                    "seconds_since_heartbeat": 12.5,
                    "steps": 10,
                    "overruns": 2,
                    "interval": 0.1,
                    "world": {"cells_visited": 7.0},
                },
                "training": {
                    "state": "failed",
                    "error": "RuntimeError('trainer broke')",
                    "hung_at": "compute_loss",
                    "steps": 3,
                    "trainers": {"dynamics": {"optimizer_steps": 3, "loss": None}},
                },
            },
        }
    )
    lines = text.splitlines()
    assert lines[0] == "stopping, up 2 min 05 s"
    assert lines[1] == (
        "inference   running  10 steps; 2 overruns; world cells_visited 7 "
        "(no heartbeat for 12.500 s)"
    )
    assert lines[2] == (
        "training    failed   3 steps (hung at compute_loss) error: RuntimeError('trainer broke')"
    )
    assert lines[3] == "            dynamics: 3 optimizer steps, no loss yet"


def test_a_reply_without_the_usual_fields_still_reads() -> None:
    assert summary.status_text({}) == "unknown, up an unknown time"
    assert summary.status_text(
        {"status": "active", "uptime_seconds": 7300, "threads": {"x": {}}}
    ) == ("active, up 2 h 01 min\nx           unknown  no progress reported")


def test_only_an_acknowledged_pause_reads_as_paused() -> None:
    done = summary.pause({"status": "paused", "acknowledged": True, "ack_seconds": 0.01})
    assert done.ok and done.text == "paused: every thread parked within 0.010 s"
    pending = summary.pause({"status": "pausing", "acknowledged": False, "ack_seconds": 1.0})
    assert not pending.ok and pending.text.startswith("not paused yet")


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        ("127.0.0.1:8391", "http://127.0.0.1:8391"),
        ("http://localhost:8391/", "http://localhost:8391"),
        ("http://[::1]:9", "http://[::1]:9"),
    ],
)
def test_urls_are_accepted_with_or_without_the_scheme(typed: str, url: str) -> None:
    assert parse_url(typed).url == url


@pytest.mark.parametrize(
    "typed", ["http://127.0.0.1:8391/api/status", "http://:8391", "http://127.0.0.1:99999"]
)
def test_a_url_that_is_not_an_api_base_is_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="expected http://<host>:<port>"):
        parse_url(typed)
