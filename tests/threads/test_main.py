"""The main thread's own settings: the hang timeout reaches it from the config, checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

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
