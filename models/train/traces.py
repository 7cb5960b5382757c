"""Reading traces: the recorded NTMA Swarm metrics and CSV files written by `swarmpilot record`.

A trace is a dict of equal-length float arrays on a regular 5 s grid, one per column, plus
`time` (epoch seconds). Gaps in the recording split a trace into segments, because windows must
never straddle a gap.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone

import numpy as np

SAMPLE_PERIOD = 5.0

# The real recording's columns, by the role they play for the models.
NTMA_ROLES = {
    "requests": "nginx_requests_per_second",  # per minute despite the name; ratios don't care
    "latency": "nginx_avg_respone_time",
    "receive_bytes": "nginx_received_http_traffic",
    "transmit_bytes": "nginx_sent_http_traffic",
}


def _parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def read_csv(path: str) -> dict[str, np.ndarray]:
    """Reads `timestamp,<metric>...` (or the recording's `time,...`); empty cells become NaN.

    A `label` or `state` column is kept as strings.
    """
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise ValueError(f"{path}: empty CSV")
        time_col = next((c for c in reader.fieldnames if c in ("timestamp", "time")), None)
        if time_col is None:
            raise ValueError(f"{path}: no `timestamp` (or `time`) column; found {reader.fieldnames}")
        rows = list(reader)
    out: dict[str, np.ndarray] = {"time": np.array([_parse_time(r[time_col]) for r in rows])}
    for col in reader.fieldnames:
        if col == time_col:
            continue
        if col in ("label", "state"):
            out["label"] = np.array([r[col] for r in rows])
            continue
        out[col] = np.array([float(r[col]) if r[col].strip() else np.nan for r in rows])
    return out


def segments(trace: dict[str, np.ndarray], max_gap: float = 60.0) -> list[dict[str, np.ndarray]]:
    """Splits a trace where consecutive timestamps are more than `max_gap` seconds apart,
    resampling each piece onto the 5 s grid by forward fill (the runtime's rule)."""
    time = trace["time"]
    order = np.argsort(time)
    cuts = np.where(np.diff(time[order]) > max_gap)[0] + 1
    pieces = []
    for idx in np.split(order, cuts):
        if len(idx) < 2:
            continue
        t = time[idx]
        grid = np.arange(t[0], t[-1] + 1e-9, SAMPLE_PERIOD)
        pos = np.searchsorted(t, grid, side="right") - 1
        piece = {"time": grid}
        for col, values in trace.items():
            if col == "time":
                continue
            piece[col] = values[idx][pos]
        pieces.append(piece)
    return pieces


def day_of(trace: dict[str, np.ndarray]) -> np.ndarray:
    return np.array(
        [datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d") for t in trace["time"]]
    )


def split_by_days(trace, days: list[str]) -> dict[str, np.ndarray]:
    mask = np.isin(day_of(trace), days)
    return {k: v[mask] for k, v in trace.items()}


def with_roles(trace: dict[str, np.ndarray], roles: dict[str, str]) -> dict[str, np.ndarray]:
    """Renames columns to model roles (requests, errors, latency, receive_bytes, transmit_bytes)."""
    out = {"time": trace["time"]}
    for role, col in roles.items():
        if col not in trace:
            raise ValueError(f"column {col!r} (role {role}) not in trace; columns: {sorted(trace)}")
        out[role] = trace[col]
    if "label" in trace:
        out["label"] = trace["label"]
    return out


def per_second_counts(trace: dict[str, np.ndarray], column: str = "requests") -> np.ndarray:
    """A trace of per-second counts (the Azure LLM arrivals) as one value per second from its
    first timestamp; seconds without a row are 0."""
    time = np.round(trace["time"] - trace["time"].min()).astype(np.int64)
    counts = np.zeros(time.max() + 1)
    np.add.at(counts, time, np.nan_to_num(trace[column]))
    return counts


def forward_filled(counts: np.ndarray) -> np.ndarray:
    """Per-second counts on the 5 s grid as `swarmpilot model eval` and `replay` read such a
    file: the count of the second at each grid point."""
    return counts[::5]
