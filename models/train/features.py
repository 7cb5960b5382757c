"""The classifier's scale-free features, computed exactly as the Rust runtime computes them
(`src/models/features.rs`); models/README.md is the written contract.

For each role present: current = mean of the last CURRENT samples (30 s), baseline = median of
the last BASELINE samples (1 h, the current ones included). Then, with eps = 1e-6 and
lr(a, b) = clamp(ln((max(a,0) + eps) / (max(b,0) + eps)), -4, 4):

  rate_ratio              = lr(cur.requests, base.requests)
  bytes_per_request_ratio = lr((cur.rx + cur.tx) / (cur.requests + eps), (base.rx + base.tx) / (base.requests + eps))
  error_ratio             = clamp(cur.errors / (cur.requests + eps), 0, 1)
  latency_ratio           = lr(cur.latency, base.latency)
  rx_tx_ratio             = lr(cur.rx / (cur.tx + eps), base.rx / (base.tx + eps))

A feature whose roles are missing takes its neutral value 0 (for bytes_per_request_ratio a
missing byte role counts as 0 on both sides; it is neutral only when requests or both are missing).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FEATURES = ["rate_ratio", "bytes_per_request_ratio", "error_ratio", "latency_ratio", "rx_tx_ratio"]
ROLES = ["requests", "errors", "latency", "receive_bytes", "transmit_bytes"]
CURRENT = 6  # samples (30 s)
BASELINE = 720  # samples (1 h)
MIN_BASELINE = 60  # samples (5 min) before the classifier runs at all
EPS = 1e-6
CLAMP = 4.0


def lr(a, b):
    a = np.maximum(a, 0.0)
    b = np.maximum(b, 0.0)
    return np.clip(np.log((a + EPS) / (b + EPS)), -CLAMP, CLAMP)


def from_summaries(cur: dict, base: dict) -> np.ndarray:
    """Features from per-role current and baseline values (arrays); a role absent from the dicts is missing."""
    n = len(next(iter(cur.values())))
    zero = np.zeros(n)
    out = np.zeros((n, len(FEATURES)))
    has = lambda role: role in cur  # noqa: E731
    if has("requests"):
        out[:, 0] = lr(cur["requests"], base["requests"])
        if has("receive_bytes") or has("transmit_bytes"):
            cb = cur.get("receive_bytes", zero) + cur.get("transmit_bytes", zero)
            bb = base.get("receive_bytes", zero) + base.get("transmit_bytes", zero)
            out[:, 1] = lr(cb / (cur["requests"] + EPS), bb / (base["requests"] + EPS))
        if has("errors"):
            out[:, 2] = np.clip(cur["errors"] / (cur["requests"] + EPS), 0.0, 1.0)
    if has("latency"):
        out[:, 3] = lr(cur["latency"], base["latency"])
    if has("receive_bytes") and has("transmit_bytes"):
        out[:, 4] = lr(
            cur["receive_bytes"] / (cur["transmit_bytes"] + EPS),
            base["receive_bytes"] / (base["transmit_bytes"] + EPS),
        )
    return out.astype(np.float32)


def compute(trace: dict[str, np.ndarray], step: int = 1):
    """Features at every `step`-th sample that has a full hour of baseline behind it.

    Returns (features [n, 5] float32, sample indices)."""
    n = len(trace["time"])
    idx = np.arange(BASELINE - 1, n, step)
    cur, base = {}, {}
    for role in ROLES:
        if role not in trace:
            continue
        x = trace[role].astype(np.float64)
        cur[role] = np.nanmean(sliding_window_view(x, CURRENT)[idx - CURRENT + 1], axis=1)
        base[role] = np.nanmedian(sliding_window_view(x, BASELINE)[idx - BASELINE + 1], axis=1)
    return from_summaries(cur, base), idx


def for_history(history: dict[str, np.ndarray]) -> np.ndarray:
    """Features from one service's recent samples per role (oldest first, at least MIN_BASELINE):
    what the runtime does at each tick."""
    cur, base = {}, {}
    for role, x in history.items():
        x = np.asarray(x, dtype=np.float64)
        if len(x) < MIN_BASELINE:
            raise ValueError(f"{role}: {len(x)} samples, need {MIN_BASELINE}")
        cur[role] = np.array([np.mean(x[-CURRENT:])])
        base[role] = np.array([np.median(x[-BASELINE:])])
    return from_summaries(cur, base)[0]
