"""The main thread's own settings: the hang timeout reaches it from the config, checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from runtime_parts import ScriptedWorld, build_runtime

from ami.experiment import build
from ami.system import SystemControl
from ami.threads import MainThread

CONF = Path(__file__).resolve().parents[2] / "conf"

pytestmark = pytest.mark.usefixtures("keep_main_thread_name")


def test_threads_hang_timeout_reaches_the_main_thread_with_the_collector(tmp_path: Path) -> None:
    overrides = [
        "threads.hang_timeout=7.5",
        "web_api=none",
        "agent=random",
        "fabric.accelerator=cpu",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("launch", overrides=overrides)
    main = build(cfg, tmp_path)
    try:
        assert main.hang_watch.timeout == 7.5
        assert main.collector is not None
        assert set(main.status()["collector"]) == {"appended", "pending", "dropped"}
    finally:
        main._waker.close()


def test_the_default_hang_timeout_is_30_seconds_and_null_disables_it() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        assert compose("launch").threads.hang_timeout == 30
        assert (
            compose("launch", overrides=["threads.hang_timeout=null"]).threads.hang_timeout is None
        )
    assert MainThread(SystemControl(), [], hang_timeout=None).hang_watch.timeout is None


def test_a_zero_hang_timeout_is_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match=r"threads\.hang_timeout=0: expected seconds > 0"):
        MainThread(SystemControl(), [], hang_timeout=0)


def test_a_stop_asked_from_outside_ends_the_run_as_interrupted(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path, max_uptime=None)
    asked = []

    def stop_when() -> str | None:
        asked.append(runtime.inference.steps)
        return "the sweep's stop file" if runtime.inference.steps >= 5 else None

    runtime.main.stop_when = stop_when
    assert runtime.main.run() == 0
    assert runtime.main.outcome == "interrupted"
    assert runtime.inference.steps >= 5
    assert len(asked) >= 2, "asked again and again by the loop, not once"


def test_a_run_that_ends_by_itself_is_completed_and_one_that_fails_says_why(
    tmp_path: Path,
) -> None:
    completed = build_runtime(tmp_path / "a", max_uptime=0.5)
    assert completed.main.run() == 0
    assert (completed.main.outcome, completed.main.reason) == ("completed", None)

    failing = build_runtime(tmp_path / "b", world=ScriptedWorld(fail_at_step=3), max_uptime=None)
    assert failing.main.run() == 1
    assert failing.main.outcome == "failed"
    assert failing.main.reason is not None and "thread inference failed" in failing.main.reason
