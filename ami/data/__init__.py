"""Experience: the inference thread's collector and the training thread's buffers."""

from ami.data.buffer import DataBuffer
from ami.data.collector import StepCollector, TakenSteps
from ami.data.random_buffer import RandomReplacementBuffer
from ami.data.sequential_buffer import SequentialBuffer
from ami.data.step import Step

__all__ = [
    "DataBuffer",
    "RandomReplacementBuffer",
    "SequentialBuffer",
    "Step",
    "StepCollector",
    "TakenSteps",
]
