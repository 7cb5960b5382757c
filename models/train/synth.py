"""Synthetic labeled traffic at 5 s steps: daily and weekly cycles, flash crowds, floods,
slow ramps, outages followed by retry storms, and degraded periods.

Each trace has the five classifier roles (requests/s, errors/s, latency s, receive and transmit
bytes/s) and a per-sample `label` in {normal, flash_crowd, flood, degraded}. Rates are smoothed
over one minute, as `rate(...[1m])` would report them, so the model sees what a policy sees.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone

import numpy as np
from scipy.signal import lfilter

DAY = 17280  # 5 s samples per day
STATES = ["normal", "flash_crowd", "flood", "degraded"]
EVENTS = ["flash_crowd", "flood", "ramp", "outage_retry", "degraded"]


def _smooth(x: np.ndarray, n: int = 12) -> np.ndarray:
    kernel = np.ones(n) / n
    padded = np.concatenate([np.full(n - 1, x[0]), x])
    return np.convolve(padded, kernel, mode="valid")


def generate(rng: np.random.Generator, days: float = 2.0, events_per_day: float = 6.0):
    n = int(days * DAY)
    t = np.arange(n)
    base = 10 ** rng.uniform(0.0, 3.7)  # 1 .. 5000 requests/s
    amp = rng.uniform(0.15, 0.7)
    phase, phase2 = rng.uniform(0, 2 * np.pi, 2)
    daily = 1 + amp * np.sin(2 * np.pi * t / DAY + phase) + 0.3 * amp * np.sin(4 * np.pi * t / DAY + phase2)
    weekday = (rng.integers(0, 7) + t // DAY) % 7
    weekend = rng.uniform(0.5, 0.95)
    weekly = np.where(weekday >= 5, weekend, 1.0)
    weekly = _smooth(weekly, 720)  # an hour-long transition, not a step at midnight
    wander = lfilter([1.0], [1.0, -0.998], rng.normal(0, 0.01, n))
    mult = np.ones(n)  # request-rate multiplier from events
    err_extra = np.zeros(n)
    lat_mult = np.ones(n)
    rx_mult = np.ones(n)  # bytes per request, received
    tx_mult = np.ones(n)  # bytes per request, sent
    label = np.zeros(n, dtype=np.int64)

    n_events = rng.poisson(events_per_day * days)
    for _ in range(n_events):
        kind = rng.choice(EVENTS, p=[0.25, 0.25, 0.1, 0.2, 0.2])
        start = int(rng.integers(800, max(801, n - 800)))
        if kind == "flash_crowd":
            rise, hold, decay = rng.integers(6, 36), rng.integers(12, 120), rng.integers(60, 360)
            # As high as floods go: a popular link can multiply real users as much as a bot
            # multiplies requests, so the rate alone must not tell the two apart (the size of a
            # request, errors and latency do).
            peak = np.exp(rng.uniform(np.log(2.5), np.log(100)))
            shape = np.concatenate([
                np.linspace(0, 1, rise), np.ones(hold), np.exp(-np.arange(decay) * 4.0 / decay)
            ])
            seg = slice(start, min(n, start + len(shape)))
            m = 1 + (peak - 1) * shape[: seg.stop - seg.start]
            mult[seg] *= m
            lat_mult[seg] *= np.minimum(1 + 0.12 * (m - 1), 2.0)
            err_extra[seg] += 0.002 * (m - 1)
            label[seg] = np.where(m > 1.6, 1, label[seg])
        elif kind == "flood":
            length = int(rng.integers(60, 360))
            seg = slice(start, min(n, start + length))
            k = seg.stop - seg.start
            onset = np.minimum(1, np.arange(k) / rng.integers(2, 12))
            peak = rng.uniform(5, 100)
            progress = np.arange(k) / max(k - 1, 1)
            mult[seg] *= 1 + (peak - 1) * onset
            rx_mult[seg] *= rng.uniform(0.15, 0.5)
            tx_mult[seg] *= rng.uniform(0.03, 0.3)
            if rng.random() < 0.5:
                # The service saturates: errors and latency climb as the flood goes on.
                err_extra[seg] += onset * (0.02 + rng.uniform(0.1, 0.5) * progress)
                lat_mult[seg] *= 1 + onset * rng.uniform(0.5, 5) * (0.3 + 0.7 * progress)
            else:
                # The service absorbs it: no more errors, and the cheap requests pull the mean
                # latency down, or leave it where it was.
                lat_mult[seg] *= 1 + onset * (np.exp(rng.uniform(np.log(0.015), np.log(1.1))) - 1)
            label[seg] = 2
        elif kind == "ramp":
            length = int(rng.integers(1440, 5760))  # 2 to 8 hours
            seg = slice(start, min(n, start + length))
            k = seg.stop - seg.start
            gain = rng.uniform(1.5, 3.0)
            mult[seg] *= 1 + (gain - 1) * np.arange(k) / length
            mult[seg.stop:] *= 1 + (gain - 1) * k / length
        elif kind == "outage_retry":
            down, storm = int(rng.integers(12, 60)), int(rng.integers(24, 120))
            seg = slice(start, min(n, start + down))
            err_extra[seg] += rng.uniform(0.8, 1.0)
            lat_mult[seg] *= rng.choice([rng.uniform(0.1, 0.4), rng.uniform(5, 20)])
            tx_mult[seg] *= rng.uniform(0.02, 0.2)  # error pages are small
            label[seg] = 3
            seg2 = slice(seg.stop, min(n, seg.stop + storm))
            k = seg2.stop - seg2.start
            decay = np.exp(-np.arange(k) * 3.0 / storm)
            mult[seg2] *= 1 + rng.uniform(1, 4) * decay
            err_extra[seg2] += rng.uniform(0.2, 0.5) * decay
            lat_mult[seg2] *= 1 + rng.uniform(1, 3) * decay
            label[seg2] = 3
        else:  # degraded: a slow dependency
            length = int(rng.integers(60, 720))
            seg = slice(start, min(n, start + length))
            lat_mult[seg] *= rng.uniform(2.5, 10)
            err_extra[seg] += rng.uniform(0.02, 0.2)
            mult[seg] *= rng.uniform(0.8, 1.0)
            label[seg] = 3

    expected = base * daily * weekly * np.exp(wander) * mult
    # Counting noise: requests seen in each 5 s step, then a one-minute rate like PromQL's.
    counts = rng.poisson(expected * 5.0) / 5.0
    requests = _smooth(counts * rng.lognormal(0, 0.03, n))
    err_rate = np.clip(rng.uniform(0.0005, 0.01) + err_extra, 0, 1)
    errors = _smooth(rng.binomial(np.round(counts * 5).astype(np.int64), err_rate) / 5.0)
    base_lat = rng.uniform(0.01, 0.3)
    load = np.clip(expected / (base * daily.mean()), 0.2, 50)
    latency = _smooth(base_lat * (1 + 0.1 * np.log1p(load)) * lat_mult * rng.lognormal(0, 0.08, n))
    req_size = rng.uniform(150, 3000)
    resp_size = rng.uniform(800, 80000)
    receive = _smooth(counts * req_size * rx_mult * rng.lognormal(0, 0.05, n))
    transmit = _smooth(counts * resp_size * tx_mult * rng.lognormal(0, 0.05, n))
    start_time = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp() + rng.integers(0, 365) * 86400
    return {
        "time": start_time + 5.0 * t,
        "requests": requests,
        "errors": errors,
        "latency": latency,
        "receive_bytes": receive,
        "transmit_bytes": transmit,
        "label": np.array(STATES)[label],
    }


def write_csv(trace: dict[str, np.ndarray], path: str) -> None:
    """Writes the `swarmpilot record` layout: `timestamp,<metric>...`, plus `label`."""
    cols = [c for c in trace if c not in ("time", "label")]
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", *cols, "label"])
        for i in range(len(trace["time"])):
            stamp = datetime.fromtimestamp(trace["time"][i], tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.writerow([stamp, *(f"{trace[c][i]:.6g}" for c in cols), trace["label"][i]])


# --- Load series for the forecaster -------------------------------------------------------
# The forecaster sees one load metric as a policy scrapes it: request counts (Poisson at 0.5 to
# 1,000 req/s, often overdispersed like real arrivals), read every 5 to 60 s as a per-second
# count, a 5 s mean or a PromQL-like rate over 15 s to 2 min, forward-filled onto the 5 s grid.


def load_rate(rng: np.random.Generator, seconds: int) -> np.ndarray:
    """Expected requests/s, one value per second: a level of 0.5 to 1,000 req/s with a cycle,
    a slow wander, level shifts and ramps (x1/8 to x8 over up to 30 min), and spikes that rise
    within 3 min, may hold up to 10 min, and decay."""
    t = np.arange(seconds)
    level = 10 ** rng.uniform(np.log10(0.5), 3.0)
    period = rng.uniform(1800, 6 * 3600)
    cycle = 1 + rng.uniform(0, 0.6) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    wander = lfilter([1.0], [1.0, -0.9995], rng.normal(0, rng.uniform(0.002, 0.02), seconds))
    log_mult = np.log(cycle) + wander
    for _ in range(rng.poisson(seconds / 3600 * rng.uniform(2, 6))):  # level shifts and ramps
        start, gain = int(rng.integers(0, seconds)), rng.uniform(-np.log(8), np.log(8))
        length = int(rng.choice([1, rng.integers(20, 360), rng.integers(20, 360), rng.integers(360, 1800)]))
        log_mult[start:] += gain * np.minimum(1, np.arange(seconds - start) / length)
    spikes = np.zeros(seconds)
    for _ in range(rng.poisson(seconds / 3600 * rng.uniform(0, 6))):
        start = int(rng.integers(0, seconds))
        rise, hold, tau = int(rng.integers(1, 180)), int(rng.integers(0, 600)), rng.uniform(20, 1800)
        peak = rng.uniform(0.5, 9)
        k = np.arange(seconds - start)
        spikes[start:] += peak * np.where(k < rise, k / rise, np.exp(-np.maximum(k - rise - hold, 0) / tau))
    return level * np.exp(np.clip(log_mult, -np.log(30), np.log(30))) * (1 + spikes)


def arrivals(rng: np.random.Generator, rate: np.ndarray) -> np.ndarray:
    """Requests counted in each second: Poisson, or a gamma-mixed Poisson (bursty arrivals such
    as the LLM traces, variance several times the mean)."""
    if rng.random() < 0.5:
        shape = 10 ** rng.uniform(-0.5, 1.5)
        rate = rate * rng.gamma(shape, 1 / shape, len(rate))
    return rng.poisson(rate).astype(np.float64)


def observe(rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
    """Per-second counts as a policy reads them on a 5 s grid (requests/s)."""
    view = rng.choice(["second", "mean5", "rate"], p=[0.35, 0.25, 0.4])
    if view == "second":
        per_second = counts
    else:
        width = 5 if view == "mean5" else int(rng.choice([15, 30, 60, 120]))
        cum = np.concatenate([[0.0], np.cumsum(counts)])
        ends = np.arange(1, len(counts) + 1)
        per_second = (cum[ends] - cum[np.maximum(ends - width, 0)]) / np.minimum(ends, width)
    scrape = int(rng.choice([5, 5, 10, 15, 30, 60]))
    grid = np.arange(int(rng.integers(0, 5)), len(counts), 5)
    first_scrape = int(rng.integers(0, scrape))
    scraped = grid - (grid - first_scrape) % scrape  # the last scrape at or before each point
    return per_second[np.clip(scraped, 0, len(counts) - 1)]


def load_series(rng: np.random.Generator, seconds: int = 6 * 3600) -> np.ndarray:
    """One synthetic load metric on the 5 s grid."""
    return observe(rng, arrivals(rng, load_rate(rng, seconds)))
