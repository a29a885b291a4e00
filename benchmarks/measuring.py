"""Helpers the benchmark scripts share: percentiles, and a client for the control API."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


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
