"""Learning jobs run by the training thread, through Lightning Fabric."""

from ami.trainers.trainer import Trainer

__all__ = ["Trainer"]
