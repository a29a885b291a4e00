"""Experience the world model never trains on, set aside as the run goes.

An evaluation is only worth its numbers if the frames it scores were not learnt by
heart. The training thread therefore withholds fixed blocks of the experience stream
from the buffers that teach the models (:class:`HoldOut`): step ``i`` of the run (counted
over every step ever taken, so a resume keeps the same schedule) is held out when
``i % period >= period - length``. Blocks, not single steps, so that the held-out steps
form sequences a forward model can be unrolled over, and so that the steps around a
block stay long unbroken runs for training.

The buffers the block is withheld from get the steps around it under new segment ids
(:func:`HoldOut.split`): a training sequence never jumps across the missing block.
Buffers the evaluation does not name (the agent's own trajectory) keep every step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ami.config_checks import whole_number
from ami.data.step import Step

SEGMENT_STRIDE = 2**32
"""Segment ids of withheld buffers: ``segment * SEGMENT_STRIDE + block``. Collector ids
only grow and so does the block number, so the new ids only grow too: buffers rely on
that to tell one run of steps from the next by comparing the ends of a window."""


@dataclass(frozen=True)
class HeldOutStep:
    """One held-out step, with where it sat in the run."""

    index: int
    """Its number among all steps the run took."""
    segment: int
    """The collector's segment id: steps of one block and one segment are consecutive."""
    data: Mapping[str, torch.Tensor]


class HoldOut:
    """Which steps are held out, and the newest of them (the training thread's).

    Args:
        period: Steps per cycle of the schedule (one block per cycle).
        length: Steps held out per cycle (the block, at its end).
        keep: Held-out steps kept (the newest); older ones are forgotten.
        keys: Step keys kept per held-out step (others are dropped to save memory).
    """

    def __init__(self, period: int, length: int, keep: int, keys: Sequence[str]) -> None:
        whole_number("evaluation.period", period, minimum=2)
        whole_number("evaluation.length", length, minimum=1)
        whole_number("evaluation.keep", keep, minimum=1)
        if length >= period:
            raise ValueError(
                f"evaluation.length={length} must be below evaluation.period={period}: "
                "the evaluation would take every step and training none"
            )
        self.period = period
        self.length = length
        self.keys = tuple(keys)
        self.steps: deque[HeldOutStep] = deque(maxlen=keep)

    def is_held_out(self, index: int) -> bool:
        """Whether step ``index`` of the run belongs to a held-out block."""
        return index % self.period >= self.period - self.length

    def split(
        self, steps: Sequence[Step], segments: Sequence[int], first_index: int
    ) -> tuple[list[Step], list[int]]:
        """Keep the held-out steps; return the rest with ids that break at each block.

        Args:
            steps: One take, in order.
            segments: Their collector segment ids.
            first_index: The run's number of the take's first step.

        Returns:
            The steps for the withheld buffers and their new segment ids.
        """
        kept: list[Step] = []
        kept_segments: list[int] = []
        for offset, (step, segment) in enumerate(zip(steps, segments, strict=True)):
            index = first_index + offset
            if self.is_held_out(index):
                data = {key: _compact(step[key]) for key in self.keys if key in step}
                self.steps.append(HeldOutStep(index, segment, data))
            else:
                kept.append(step)
                kept_segments.append(segment * SEGMENT_STRIDE + index // self.period)
        return kept, kept_segments

    def runs(self, since: int = 0) -> list[list[HeldOutStep]]:
        """The kept held-out steps from run step ``since`` on, as runs of consecutive steps."""
        runs: list[list[HeldOutStep]] = []
        for step in self.steps:
            if step.index < since:
                continue
            if runs:
                last = runs[-1][-1]
                if step.index == last.index + 1 and step.segment == last.segment:
                    runs[-1].append(step)
                    continue
            runs.append([step])
        return runs

    def state_dict(self) -> dict[str, Any]:
        """The kept steps (they are data: saved only where the buffers are)."""
        return {
            "steps": [
                {"index": step.index, "segment": step.segment, "data": dict(step.data)}
                for step in self.steps
            ]
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.steps.clear()
        for entry in state["steps"]:
            self.steps.append(
                HeldOutStep(int(entry["index"]), int(entry["segment"]), dict(entry["data"]))
            )


def _compact(tensor: torch.Tensor) -> torch.Tensor:
    """Frames at half precision (as the experience buffer stores them), the rest as is."""
    if tensor.dtype == torch.float32 and tensor.numel() >= 1024:
        return tensor.to(torch.float16)
    return tensor
