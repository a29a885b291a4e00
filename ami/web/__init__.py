"""The control API, served from the main thread."""

from ami.web.api import ControlAPI

__all__ = ["ControlAPI"]
