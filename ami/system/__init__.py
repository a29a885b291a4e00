"""System control, owned by the main thread: shutdown, pause/resume, and its read-only handles."""

from ami.system.control import SystemControl, SystemState, ThreadControl

__all__ = ["SystemControl", "SystemState", "ThreadControl"]
