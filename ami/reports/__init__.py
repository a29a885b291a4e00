"""Reports over finished (or killed) runs: ``python scripts/summarize.py <runs> ...``.

A sweep is only useful if its runs can be compared without opening TensorBoard: this
package finds run folders (:mod:`~ami.reports.run_folders`), reads each one's event files,
overrides and outcome (:mod:`~ami.reports.run_data`), reduces them to a few key numbers
(:mod:`~ami.reports.final_metrics`), and renders a table (:mod:`~ami.reports.tables`)
and one PNG of every run's curves (:mod:`~ami.reports.curves`).

Nothing here imports torch or the runtime: a summary of a hundred runs starts in a
fraction of a second, and a damaged run is reported in its row instead of stopping the
summary.
"""

from ami.reports.run_data import RunData, read_run
from ami.reports.run_folders import NoRunsFound, find_runs, run_names

__all__ = ["NoRunsFound", "RunData", "find_runs", "read_run", "run_names"]
