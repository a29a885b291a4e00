"""The wires to a world: the action space, sensors (cameras, videos), actuators (OSC)."""

from ami.interaction.io.actions import ACTION_CHOICES, ACTION_NAMES, Inputs
from ami.interaction.io.actuator import Actuator
from ami.interaction.io.camera import CameraSensor
from ami.interaction.io.osc_actuator import OscActuator
from ami.interaction.io.sensor import Sensor
from ami.interaction.io.video_files import EndOfVideos, VideoFilesSensor

__all__ = [
    "ACTION_CHOICES",
    "ACTION_NAMES",
    "Actuator",
    "CameraSensor",
    "EndOfVideos",
    "Inputs",
    "OscActuator",
    "Sensor",
    "VideoFilesSensor",
]
