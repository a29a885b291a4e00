"""Helpers the benchmark scripts share: percentiles, and a client for the control API."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def read_events(folder: Path | str) -> EventAccumulator:
    """Every record of the event files in ``folder`` (one run's ``tensorboard/``), loaded.

    ``scalars: 0`` keeps every scalar: TensorBoard's default keeps a sample of 10,000
    per tag, which would drop most steps of a long run and bias its percentiles.
    """
    # Imported here: the benchmarks that only call the API need not load TensorBoard.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), {"scalars": 0})
    events.Reload()
    return events


def call_api(url: str, method: str = "GET", timeout: float = 120.0) -> dict[str, Any]:
    """One request to the control API; POSTs are JSON, as the API requires."""
    request = urllib.request.Request(
        url,
        method=method,
        data=b"" if method == "POST" else None,
        headers={"Content-Type": "application/json"} if method == "POST" else {},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body
