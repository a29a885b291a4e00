"""Environment wrappers: change or record what passes between an agent and its world."""

from ami.interaction.wrappers.recording import RecordingWrapper

__all__ = ["RecordingWrapper"]
