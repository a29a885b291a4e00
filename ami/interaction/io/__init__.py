"""The wires to a world: the action space, sensors (cameras, videos, sound), actuators (OSC)."""

from ami.interaction.io.actions import ACTION_CHOICES, ACTION_NAMES, Inputs
from ami.interaction.io.actuator import Actuator
from ami.interaction.io.audio import AudioFileSensor, EndOfAudio, MicrophoneSensor
from ami.interaction.io.camera import CameraSensor
from ami.interaction.io.osc_actuator import OscActuator
from ami.interaction.io.sensor import Sensor
from ami.interaction.io.spectrogram import AUDIO, LogMelSpectrogram
from ami.interaction.io.video_files import EndOfVideos, VideoFilesSensor

__all__ = [
    "ACTION_CHOICES",
    "ACTION_NAMES",
    "AUDIO",
    "Actuator",
    "AudioFileSensor",
    "CameraSensor",
    "EndOfAudio",
    "EndOfVideos",
    "Inputs",
    "LogMelSpectrogram",
    "MicrophoneSensor",
    "OscActuator",
    "Sensor",
    "VideoFilesSensor",
]
