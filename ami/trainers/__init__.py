"""Learning jobs run by the training thread, through Lightning Fabric."""

from ami.trainers.dynamics import DynamicsTrainer
from ami.trainers.reconstruction import ReconstructionTrainer
from ami.trainers.trainer import Trainer

__all__ = ["DynamicsTrainer", "ReconstructionTrainer", "Trainer"]
