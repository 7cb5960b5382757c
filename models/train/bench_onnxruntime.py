"""onnxruntime's inference latency on the shipped models, with the same inputs as the criterion
bench `benches/models.rs` (golden rows, tiled to the batch size), single-threaded like tract.

    models/train/.venv/bin/python models/train/bench_onnxruntime.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort

MODELS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def batch(name: str, size: int) -> np.ndarray:
    with open(os.path.join(MODELS, "golden", f"{name}.json")) as handle:
        tensor = json.load(handle)["input"]
    rows = np.array(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    return np.resize(rows, (size, rows.shape[1])).astype(np.float32)  # tiles the rows


def measure(session, feed, seconds: float) -> float:
    """Median seconds per call over batches of calls filling `seconds`."""
    session.run(None, feed)
    calls = 1
    while True:
        started = time.perf_counter()
        for _ in range(calls):
            session.run(None, feed)
        if time.perf_counter() - started > 0.05:
            break
        calls *= 2
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(calls):
            session.run(None, feed)
        samples.append((time.perf_counter() - started) / calls)
    return float(np.median(samples))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="measurement time per case")
    args = parser.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    print(f"onnxruntime {ort.__version__}, 1 thread")
    for name in ("traffic-forecast", "traffic-states"):
        session = ort.InferenceSession(os.path.join(MODELS, f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        for size in (1, 1000):
            per_call = measure(session, {input_name: batch(name, size)}, args.seconds)
            print(f"{name} batch {size:>4}: {per_call * 1e6:10.2f} us per call, {per_call * 1e6 / size:8.3f} us per service")


if __name__ == "__main__":
    main()
