import logging
import threading

import pytest
import torch

from ami.data import StepCollector
from ami.sharing import OwnershipError


def step(i: int) -> dict[str, torch.Tensor]:
    return {"index": torch.tensor(i)}


def test_take_returns_everything_in_order_and_leaves_it_empty() -> None:
    collector = StepCollector()
    for i in range(5):
        collector.append(step(i))
    taken = collector.take()
    assert [int(s["index"]) for s in taken] == [0, 1, 2, 3, 4]
    assert taken.dropped == 0
    assert collector.pending == 0
    assert len(collector.take()) == 0


def test_take_swaps_the_container_instead_of_copying() -> None:
    collector = StepCollector()
    for i in range(3):
        collector.append(step(i))
    pending_before = collector._pending
    taken = collector.take()
    assert taken.entries is pending_before
    assert collector._pending is not pending_before


def test_overflow_drops_oldest_counts_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    collector = StepCollector(name="exp", max_pending=3)
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            collector.append(step(i))
    taken = collector.take()
    assert [int(s["index"]) for s in taken] == [2, 3, 4]
    assert taken.dropped == 2
    assert collector.dropped_total == 2
    assert collector.appended_total == 5
    assert "exp: pending queue full" in caplog.text
    assert collector.take().dropped == 0


def test_listeners_run_on_every_append() -> None:
    collector = StepCollector()
    calls = []
    collector.on_append(lambda: calls.append(1))
    collector.append(step(0))
    collector.append(step(1))
    assert len(calls) == 2


def test_only_the_writer_appends() -> None:
    collector = StepCollector()
    errors: list[BaseException] = []

    def intruder() -> None:
        try:
            collector.append(step(0))
        except OwnershipError as error:
            errors.append(error)

    thread = threading.Thread(target=intruder, name="training")
    thread.start()
    thread.join(2)
    assert len(errors) == 1
    assert "experience.append" in str(errors[0])
    assert collector.pending == 0


def test_rejects_bad_max_pending() -> None:
    with pytest.raises(ValueError, match=r"experience.max_pending=0: expected a whole number >= 1"):
        StepCollector(max_pending=0)


@pytest.mark.timeout(60)
def test_stress_every_step_arrives_exactly_once_in_order() -> None:
    """Both threads busy: 150k appends while the other side takes repeatedly."""
    total = 150_000
    collector = StepCollector(max_pending=None)
    received: list[int] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def inference() -> None:
        try:
            for i in range(total):
                collector.append({"index": i})  # type: ignore[dict-item]
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()

    producer = threading.Thread(target=inference, name="inference")
    collector.transfer_to(producer)
    takes = 0
    producer.start()
    while not done.is_set() or collector.pending:
        taken = collector.take()
        takes += 1
        received.extend(int(s["index"]) for s in taken)
    received.extend(int(s["index"]) for s in collector.take())
    producer.join(10)
    assert not errors
    assert takes > 10, "the test must interleave takes with appends"
    assert len(received) == total
    assert received == list(range(total))


def test_only_the_taker_takes() -> None:
    collector = StepCollector()
    collector.append(step(0))
    training = threading.Thread(target=lambda: None, name="training")
    collector.transfer_taking_to(training)
    with pytest.raises(OwnershipError, match=r"experience\.take: thread 'MainThread' may not take"):
        collector.take()
    assert collector.pending == 1, "a refused take loses nothing"
    with pytest.raises(OwnershipError, match="transfer_taking_to"):
        collector.transfer_taking_to(threading.current_thread())


def test_segments_start_at_begin_segment_once_and_continue_across_takes() -> None:
    collector = StepCollector()
    collector.begin_segment()  # nothing appended yet: no new segment
    collector.append(step(0))
    collector.append(step(1))
    first = collector.take()
    collector.append(step(2))  # continues the segment across the take
    collector.begin_segment()
    collector.begin_segment()  # a pause and its resume: one break
    collector.append(step(3))
    second = collector.take()
    assert first.segments[0] == first.segments[1] == second.segments[0]
    assert second.segments[1] != second.segments[0]


def test_a_drop_starts_a_new_segment_after_the_lost_step() -> None:
    collector = StepCollector(max_pending=3)
    collector.append(step(0))
    before = collector.take()
    for i in range(1, 6):  # 1 and 2 are dropped
        collector.append(step(i))
    after = collector.take()
    assert [int(s["index"]) for s in after] == [3, 4, 5]
    assert after.dropped == 2
    assert len(set(after.segments)) == 1, "3, 4, 5 follow each other"
    assert after.segments[0] != before.segments[0], "3 does not follow 0"
