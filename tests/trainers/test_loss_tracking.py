import math

import pytest

from ami.trainers.loss_tracking import LossTracker


def test_nothing_is_claimed_before_the_first_step() -> None:
    tracker = LossTracker(window=3)
    assert tracker.numbers.steps == 0
    assert tracker.numbers.last is None and tracker.numbers.final is None
    assert tracker.numbers.best is None
    assert tracker.take_window() is None


def test_final_is_the_mean_of_the_last_window_and_best_the_lowest_such_mean() -> None:
    tracker = LossTracker(window=3)
    for loss in (9.0, 3.0, 3.0, 3.0, 6.0, 6.0, 6.0):
        tracker.add(loss)
    numbers = tracker.numbers
    assert numbers.steps == 7
    assert numbers.last == 6.0
    assert numbers.final == pytest.approx(6.0)
    assert numbers.best == pytest.approx(3.0), "the window 3, 3, 3"


def test_before_a_whole_window_best_is_the_mean_so_far() -> None:
    tracker = LossTracker(window=50)
    tracker.add(2.0)
    tracker.add(4.0)
    assert tracker.numbers.final == pytest.approx(3.0)
    assert tracker.numbers.best == pytest.approx(3.0)


def test_a_non_finite_loss_counts_as_a_step_but_spoils_no_mean() -> None:
    tracker = LossTracker(window=2)
    tracker.add(1.0)
    tracker.add(math.nan)
    assert tracker.numbers.steps == 2
    assert math.isnan(tracker.numbers.last or 0.0)
    assert tracker.numbers.final == pytest.approx(1.0)
    window = tracker.take_window()
    assert window is not None and window.steps == 1


def test_the_log_window_covers_the_steps_since_the_last_line() -> None:
    tracker = LossTracker(window=10)
    for loss in (1.0, 2.0, 3.0):
        tracker.add(loss)
    first = tracker.take_window()
    assert first is not None
    assert (first.steps, first.mean, first.low, first.high, first.last) == (3, 2.0, 1.0, 3.0, 3.0)
    tracker.add(5.0)
    second = tracker.take_window()
    assert second is not None and second.steps == 1 and second.mean == 5.0
    assert tracker.take_window() is None


def test_a_window_of_zero_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="loss window"):
        LossTracker(window=0)
