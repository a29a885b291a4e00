"""``python -m ami.console``: the same as the ``ami-console`` script."""

from __future__ import annotations

from ami.console.cli import main

raise SystemExit(main())
