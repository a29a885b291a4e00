"""Deep models shared between the training thread (writes) and the inference thread (reads)."""

from ami.models.wrapper import InferenceModel, ModelWrapper

__all__ = ["InferenceModel", "ModelWrapper"]
