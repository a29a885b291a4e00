"""The three threads: main (control, web API), inference (agent <-> world), training."""

from ami.threads.background import BackgroundThread
from ami.threads.inference import InferenceThread
from ami.threads.main import MainThread
from ami.threads.training import TrainingThread

__all__ = ["BackgroundThread", "InferenceThread", "MainThread", "TrainingThread"]
