"""The LSTM load forecaster: model, training, ONNX export and MASE evaluation.

Input `window` [batch, 60] raw samples (5 min at 5 s), output `forecast` [batch, 12] (the next
60 s). The graph divides the window by its mean absolute value (+1e-6) and multiplies the output
back, so one model serves 10 and 10,000 requests/s. The LSTM reads the window as 12 chunks of
5 samples and predicts the change from the last value for all 12 steps at once.
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
            scale = x.abs().mean(dim=1, keepdim=True) + EPS
            loss = (model(x) / scale - y / scale).abs().mean()  # L1: MASE is an absolute-error measure
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


def mase(series: np.ndarray, first_origin: int, forecast_fn, stride: int = 1) -> dict:
    """MASE of the model, naive last-value and seasonal-naive (one day back) forecasts.

    Origins are every `stride`-th sample from `first_origin` (which must have a full window and,
    for seasonal naive, a full day behind it) to the last one with a full horizon ahead. The
    scale is the mean absolute one-step change over the evaluated part of the series, the same
    for all three, so their ratios compare plain absolute errors. The Rust `model eval` uses the
    same definition."""
    last = len(series) - HORIZON
    origins = np.arange(first_origin, last, stride)
    inputs = np.stack([series[o - WINDOW + 1 : o + 1] for o in origins]).astype(np.float32)
    actual = np.stack([series[o + 1 : o + 1 + HORIZON] for o in origins])
    model = forecast_fn(inputs)
    naive = np.repeat(series[origins][:, None], HORIZON, axis=1)
    seasonal = np.stack([series[o + 1 - SEASON : o + 1 + HORIZON - SEASON] for o in origins])
    evaluated = series[first_origin - 1 : len(series)]
    scale = np.mean(np.abs(np.diff(evaluated)))
    result = {
        "origins": int(len(origins)),
        "model": float(np.mean(np.abs(model - actual)) / scale),
        "naive": float(np.mean(np.abs(naive - actual)) / scale),
        "seasonal_naive": float(np.mean(np.abs(seasonal - actual)) / scale),
    }
    result["per_step_model"] = [float(v) for v in np.mean(np.abs(model - actual), axis=0) / scale]
    result["per_step_naive"] = [float(v) for v in np.mean(np.abs(naive - actual), axis=0) / scale]
    return result


def export(model: Forecaster, metadata: dict[str, str]) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
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
