"""Compare runs without TensorBoard: ``python scripts/summarize.py <runs> [...]``.

Prints one row per run (its overrides, outcome and key numbers) and writes one PNG with
every run's loss and coverage curves. A path may be a run, a multirun
(``logs/<task>/multiruns/<stamp>``), a task's ``runs/`` folder, or any folder above
them.

Examples:
    python scripts/summarize.py logs/default/multiruns/<stamp>
    python scripts/summarize.py logs/default/runs --format markdown --varying
    python scripts/summarize.py logs --format csv --no-png > runs.csv

The table goes to stdout; with ``--format csv`` everything else (notes, where the PNG
went) goes to stderr so that the CSV stays clean. Exit codes: 0; 2 for bad arguments (a
path that does not exist or holds no run, a ``--png`` in a folder that does not exist);
1 when the PNG could not be written (after the table is printed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ami.reports import NoRunsFound
from ami.reports.curves import draw_curves, save
from ami.reports.summary import collect
from ami.reports.tables import FORMATS, build_table, notes, render


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="summarize.py",
        description="One row per run (overrides, outcome, key numbers) and a PNG of curves.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="run, multirun, runs/ or logs folders")
    parser.add_argument("--format", choices=FORMATS, default="text", help="table format")
    png = parser.add_mutually_exclusive_group()
    png.add_argument("--png", type=Path, help="where to write the PNG (<first path>/summary.png)")
    png.add_argument("--no-png", action="store_true", help="write no PNG")
    parser.add_argument(
        "--varying", action="store_true", help="only the overrides that differ between runs"
    )
    parser.add_argument(
        "--hparams", action="store_true", help="add the hparams that differ between runs"
    )
    args = parser.parse_args(argv)
    if args.png is not None and not args.png.parent.is_dir():
        parser.error(f"--png {args.png}: the folder {args.png.parent} does not exist")
    try:
        args.runs = collect(args.paths)
    except NoRunsFound as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs, names = args.runs.runs, args.runs.names
    messages = sys.stderr if args.format == "csv" else sys.stdout
    table = build_table(runs, names, varying_only=args.varying, hparams=args.hparams)
    sys.stdout.write(render(table, args.format))
    for line in notes(runs, names):
        print(line, file=messages)
    if args.no_png:
        return 0
    where = ", ".join(str(path) for path in args.paths)
    figure = draw_curves(runs, names, title=f"{len(runs)} run{'s' * (len(runs) != 1)}: {where}")
    if figure is None:
        print("no run has a loss or coverage curve: no PNG written", file=messages)
        return 0
    path: Path = args.png if args.png is not None else args.paths[0] / "summary.png"
    try:
        save(figure, path)
    except OSError as error:
        print(f"could not write the PNG {path}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"curves: {path}", file=messages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
