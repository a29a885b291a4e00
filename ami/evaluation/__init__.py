"""Evaluation on held-out experience: numbers a researcher can quote (``eval/*``)."""

from ami.evaluation.evaluation import Evaluation
from ami.evaluation.held_out import HoldOut
from ami.evaluation.probe import ridge_r2
from ami.evaluation.world_model import WorldModelEvaluation

__all__ = ["Evaluation", "HoldOut", "WorldModelEvaluation", "ridge_r2"]
