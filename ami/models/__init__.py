"""Deep models shared between the training thread (writes) and the inference thread (reads).

:class:`ModelGate` is the only way models move between the two (see
:mod:`ami.models.gate`).
"""

from ami.models.gate import InferenceModels, ModelGate
from ami.models.inference_methods import inference_method, inference_methods
from ami.models.optimizer_binding import REBINDABLE, BoundOptimizer
from ami.models.snapshot import InferenceModel, ModelSnapshot

__all__ = [
    "REBINDABLE",
    "BoundOptimizer",
    "InferenceModel",
    "InferenceModels",
    "ModelGate",
    "ModelSnapshot",
    "inference_method",
    "inference_methods",
]
