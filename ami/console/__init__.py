"""``ami-console``: the command-line client of a run's control API.

One-shot commands (``ami-console status``) suit scripts: a short summary or the raw
JSON, and an exit code that says whether the run did what was asked. Without a command
it opens a prompt with the same commands, help, completion and history. It finds a run
by its ``control_api.json`` (``--run``), or the newest live run under ``logs/``.

It uses the standard library only, so it starts fast and never imports torch.
"""

from __future__ import annotations

from ami.console.cli import main

__all__ = ["main"]
