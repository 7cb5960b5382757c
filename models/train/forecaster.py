"""The LSTM load forecaster: model, training, ONNX export and MASE evaluation.

Input `window` [batch, 60] raw samples (5 min at 5 s), output `forecast` [batch, 12] (the next
60 s). The graph divides the window by its mean absolute value (+1e-6) and multiplies the output
back, so one model serves 10 and 10,000 requests/s. The LSTM reads the window as 12 chunks of
5 samples and predicts the change from the last value for all 12 steps at once.

Training uses `nn.LSTM`; the export unrolls its 12 steps into plain matrix products
(`Unrolled`, the same weights), because a runtime runs a fixed 12-step loop of small matrix
products faster than a generic ONNX `LSTM`/`Scan` over a symbolic batch dimension.
"""

from __future__ import annotations

import io
import time

import numpy as np
import onnx
import torch
from torch import nn
from numpy.lib.stride_tricks import sliding_window_view

WINDOW = 60
HORIZON = 12
CHUNK = 5
HIDDEN = 32
EPS = 1e-6
SEASON = 17280  # one day of 5 s samples


class Forecaster(nn.Module):
    def __init__(self, hidden: int = HIDDEN):
        super().__init__()
        self.lstm = nn.LSTM(CHUNK, hidden, batch_first=True)
        self.head = nn.Linear(hidden, HORIZON)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        scale = window.abs().mean(dim=1, keepdim=True) + EPS
        x = window / scale
        _, (h, _) = self.lstm(x.reshape(-1, WINDOW // CHUNK, CHUNK) - 1.0)
        return (x[:, -1:] + self.head(h[-1])) * scale


class Unrolled(nn.Module):
    """The same function as a trained `Forecaster`, with the LSTM written out step by step."""

    def __init__(self, trained: Forecaster):
        super().__init__()
        lstm = trained.lstm
        self.w_ih = nn.Parameter(lstm.weight_ih_l0.detach().t().contiguous())
        self.w_hh = nn.Parameter(lstm.weight_hh_l0.detach().t().contiguous())
        self.bias = nn.Parameter((lstm.bias_ih_l0 + lstm.bias_hh_l0).detach())
        self.head = trained.head
        self.hidden = lstm.hidden_size

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        scale = window.abs().mean(dim=1, keepdim=True) + EPS
        x = window / scale
        steps = WINDOW // CHUNK
        # One product for every step's input gates, then the recurrence (PyTorch gate order
        # input, forget, cell, output).
        gates_in = (x.reshape(-1, steps, CHUNK) - 1.0) @ self.w_ih + self.bias
        h = c = None
        for step in range(steps):
            gates = gates_in[:, step] if h is None else gates_in[:, step] + h @ self.w_hh
            i, f, g, o = gates.split(self.hidden, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = i * g if c is None else f * c + i * g
            h = o * torch.tanh(c)
        return (x[:, -1:] + self.head(h)) * scale


def windows(series: np.ndarray, stride: int = 1):
    """(inputs [n, WINDOW], targets [n, HORIZON]) from one gap-free series."""
    span = sliding_window_view(series, WINDOW + HORIZON)[::stride]
    keep = np.isfinite(span).all(axis=1)
    span = span[keep]
    return span[:, :WINDOW].astype(np.float32), span[:, WINDOW:].astype(np.float32)


def train(inputs: np.ndarray, targets: np.ndarray, epochs: int, seed: int = 0, log=print) -> Forecaster:
    torch.manual_seed(seed)
    model = Forecaster()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    x_all, y_all = torch.from_numpy(inputs), torch.from_numpy(targets)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        started = time.time()
        order = torch.randperm(len(x_all), generator=gen)
        total = 0.0
        for i in range(0, len(order), 512):
            batch = order[i : i + 512]
            x, y = x_all[batch], y_all[batch]
            # L1 (MASE is an absolute-error measure) relative to the level of window and
            # target together: a silent window followed by requests must not weigh 1e6 times more.
            scale = torch.cat([x, y], dim=1).abs().mean(dim=1, keepdim=True) + EPS
            loss = ((model(x) - y) / scale).abs().mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.item() * len(batch)
        sched.step()
        log(f"  epoch {epoch + 1}/{epochs}: scaled L1 {total / len(order):.4f} ({time.time() - started:.0f}s)")
    return model.eval()


def predict(model: Forecaster, inputs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(inputs[i : i + 4096])).numpy() for i in range(0, len(inputs), 4096)])


def holt(series: np.ndarray, origins: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Holt's linear exponential smoothing run over the series from its start; the forecasts
    [len(origins), HORIZON] made at each origin from the samples up to it."""
    level, trend = float(series[0]), 0.0
    states = np.empty((len(series), 2))
    for k, value in enumerate(series):
        if k:
            previous = level
            level = alpha * value + (1 - alpha) * (level + trend)
            trend = beta * (level - previous) + (1 - beta) * trend
        states[k] = level, trend
    steps = np.arange(1, HORIZON + 1)
    return states[origins, :1] + states[origins, 1:] * steps


HOLT_GRID = [(a, b) for a in (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0) for b in (0.0, 0.01, 0.05, 0.2)]


def mase(series: np.ndarray, first_origin: int, forecast_fn, stride: int = 1) -> dict:
    """MASE of the model, naive last-value, Holt and (when a day of history exists) seasonal-naive
    (one day back) forecasts.

    Origins are every `stride`-th sample from `first_origin` (which must have a full window
    behind it) to the last one with a full horizon ahead. The scale is the mean absolute
    one-step change over the evaluated part of the series, the same for all, so their ratios
    compare plain absolute errors. The Rust `model eval` uses the same definition. Holt's two
    parameters are the best of a grid on this very series, an optimistic baseline."""
    last = len(series) - HORIZON
    origins = np.arange(first_origin, last, stride)
    inputs = np.stack([series[o - WINDOW + 1 : o + 1] for o in origins]).astype(np.float32)
    actual = np.stack([series[o + 1 : o + 1 + HORIZON] for o in origins])
    evaluated = series[first_origin - 1 : len(series)]
    scale = np.mean(np.abs(np.diff(evaluated)))
    errors = lambda forecast: np.mean(np.abs(forecast - actual), axis=0) / scale  # noqa: E731
    per_step = {
        "model": errors(forecast_fn(inputs)),
        "naive": errors(np.repeat(series[origins][:, None], HORIZON, axis=1)),
    }
    holt_fits = [(errors(holt(series, origins, a, b)), (a, b)) for a, b in HOLT_GRID]
    per_step["holt"], holt_params = min(holt_fits, key=lambda fit: fit[0].mean())
    if first_origin >= SEASON:
        per_step["seasonal_naive"] = errors(np.stack([series[o + 1 - SEASON : o + 1 + HORIZON - SEASON] for o in origins]))
    result = {"origins": int(len(origins)), "holt_params": holt_params, "seasonal_naive": None}
    for name, steps in per_step.items():
        result[name] = float(steps.mean())
        result[f"per_step_{name}"] = [float(v) for v in steps]
    return result


def export(model: Forecaster, metadata: dict[str, str]) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(
        Unrolled(model).eval(),
        (torch.rand(1, WINDOW) * 100,),
        buffer,
        input_names=["window"],
        output_names=["forecast"],
        dynamic_axes={"window": {0: "batch"}, "forecast": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load_from_string(buffer.getvalue())
    proto.producer_name = "swarmpilot models/train"
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    return proto
