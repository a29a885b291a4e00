"""Learning jobs run by the training thread, through Lightning Fabric."""

from ami.trainers.dynamics import DynamicsTrainer
from ami.trainers.multimodal import MultimodalReconstructionTrainer
from ami.trainers.ppo import PPOTrainer
from ami.trainers.reconstruction import ReconstructionTrainer
from ami.trainers.trainer import Trainer
from ami.trainers.vae import VAETrainer

__all__ = [
    "DynamicsTrainer",
    "MultimodalReconstructionTrainer",
    "PPOTrainer",
    "ReconstructionTrainer",
    "Trainer",
    "VAETrainer",
]
