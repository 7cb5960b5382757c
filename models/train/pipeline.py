"""The whole pipeline in one command: generate synthetic traffic, read the recorded metrics,
train both models, export them to ONNX, evaluate them, and write the golden files and model cards.

    models/train/.venv/bin/python models/train/pipeline.py [--data CSV] [--trace CSV --column NAME]... [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cards  # noqa: E402
import classifier  # noqa: E402
import features  # noqa: E402
import synth  # noqa: E402
import traces  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.dirname(HERE)
REPO = os.path.dirname(MODELS)
# ../shared/data beside the repository (or beside the folder of worktrees holding it).
DATA_CANDIDATES = [os.path.join(REPO, *up, "shared", "data", "ntma-swarm-metrics.csv") for up in ([".."], ["..", ".."])]
DEFAULT_DATA = next((p for p in DATA_CANDIDATES if os.path.exists(p)), DATA_CANDIDATES[0])
TRAIN_DAYS = ["2023-06-13", "2023-06-14", "2023-06-15", "2023-06-16"]
EVAL_DAY = "2023-06-17"
VERSION = "1"


def log(message: str) -> None:
    print(message, flush=True)


@dataclass
class Data:
    """What both models train and are evaluated on."""

    train_synth: list
    eval_synth: list
    real_train: list
    eval_context: dict
    first_eval: int
    extra: list


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="the recorded NTMA Swarm metrics CSV")
    parser.add_argument("--trace", action="append", default=[], help="extra training trace in `swarmpilot record` CSV format")
    parser.add_argument("--column", default="requests", help="the load column of --trace files (forecaster)")
    parser.add_argument("--quick", action="store_true", help="fewer traces and epochs, to test the pipeline")
    parser.add_argument("--out", default=MODELS, help="where the .onnx files, golden/ and cards go")
    parser.add_argument("--epochs", type=int, default=10, help="forecaster training epochs")
    parser.add_argument("--only", choices=["forecaster", "classifier"], help="train one model; the other's files stay as they are")
    args = parser.parse_args()
    started = time.time()

    n_train, n_eval = (4, 2) if args.quick else (16, 6)
    log(f"synthetic traffic: {n_train} training and {n_eval} held-out traces of 2 days at 5 s")
    train_synth = [synth.generate(np.random.default_rng(1 + i)) for i in range(n_train)]
    eval_synth = [synth.generate(np.random.default_rng(1001 + i)) for i in range(n_eval)]

    log(f"recorded metrics: {args.data}")
    real = traces.read_csv(args.data)
    real_segments = traces.segments(traces.with_roles(real, traces.NTMA_ROLES))
    real_train = [traces.split_by_days(s, TRAIN_DAYS) for s in real_segments]
    # The held-out day with the day before it as context (window and seasonal naive).
    eval_context = next(s for s in real_segments if EVAL_DAY in set(traces.day_of(s)))
    eval_context = traces.split_by_days(eval_context, ["2023-06-16", EVAL_DAY])
    first_eval = int(np.argmax(traces.day_of(eval_context) == EVAL_DAY))

    extra = []
    for path in args.trace:
        for seg in traces.segments(traces.read_csv(path)):
            extra.append(seg)
        log(f"extra trace: {path}")

    data = Data(train_synth, eval_synth, real_train, eval_context, first_eval, extra)
    golden = os.path.join(args.out, "golden")
    os.makedirs(golden, exist_ok=True)
    if args.only != "classifier":
        train_forecaster(args, data, golden)
    if args.only != "forecaster":
        train_classifier(args, data, golden)
    log(f"done in {time.time() - started:.0f}s: {args.out}/*.onnx, {golden}/")


AZURE = {"code": "azure-llm-code-1s.csv", "conv": "azure-llm-conv-1s.csv"}
# The Azure conversation trace is held out whole, the code trace's last third.
AZURE_TRAIN_FRACTION = {"code": 2 / 3, "conv": 0.0}


def held_out_and_training_real(data: Data, data_dir: str, window: int):
    """The real traces kept out of training, as (name, series on the 5 s grid, first origin),
    and the per-second counts of the parts that train."""
    held_out = [(f"NTMA Swarm, day {EVAL_DAY} (requests/min)", data.eval_context["requests"], data.first_eval)]
    train_counts = []
    for key, file in AZURE.items():
        counts = traces.per_second_counts(traces.read_csv(os.path.join(data_dir, file)))
        cut = int(len(counts) * AZURE_TRAIN_FRACTION[key]) // 5 * 5
        if cut:
            train_counts.append(counts[:cut])
        series = traces.forward_filled(counts)
        first = max(cut // 5, window - 1)
        part = "whole trace" if not cut else f"last {1 - AZURE_TRAIN_FRACTION[key]:.0%}"
        held_out.append((f"Azure LLM {key}, {part} (requests/s, 1 s counts)", series, first))
    return held_out, train_counts


def train_forecaster(args, data: Data, golden: str) -> None:
    # PyTorch only here: `--only classifier` runs without it.
    import torch

    import forecaster

    torch.set_num_threads(1)  # the machine is shared: one thread avoids OpenMP spin-waiting
    epochs = 2 if args.quick else args.epochs
    held_out, azure_train = held_out_and_training_real(data, os.path.dirname(args.data), forecaster.WINDOW)
    real_train = [s for s in data.real_train if len(s["time"]) > forecaster.WINDOW + forecaster.HORIZON]
    rng = np.random.default_rng(5)
    n_load = 8 if args.quick else 48
    load_train = [synth.load_series(np.random.default_rng(3000 + i)) for i in range(n_load)]
    load_eval = [synth.load_series(np.random.default_rng(4000 + i)) for i in range(6)]
    azure_views = [traces.forward_filled(c[phase:]) for c in azure_train for phase in range(5)]
    azure_views += [synth.observe(rng, c) for c in azure_train for _ in range(12)]
    parts = [forecaster.windows(s["requests"], stride=1) for s in real_train]
    parts += [forecaster.windows(s["requests"], stride=8) for s in data.train_synth]
    parts += [forecaster.windows(s, stride=2) for s in load_train]
    parts += [forecaster.windows(s, stride=1) for s in azure_views]
    parts += [forecaster.windows(s[args.column], stride=1) for s in data.extra if args.column in s]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    log(f"forecaster: {len(x)} training windows, {epochs} epochs")
    model = forecaster.train(x, y, epochs, log=log)
    forecast_meta = {
        "kind": "forecaster",
        "version": VERSION,
        "features": "load",
        "input": "window",
        "output": "forecast",
        "window": str(forecaster.WINDOW),
        "sample_period": "5",
        "horizon": str(forecaster.HORIZON),
        "normalization": "in-graph: window / (mean(|window|) + 1e-6), forecast scaled back",
        "description": "LSTM forecast of a load metric (e.g. requests/s) over the next 60 s from the last 5 min",
    }
    forecast_proto = forecaster.export(model, forecast_meta)
    forecast_path = os.path.join(args.out, "traffic-forecast.onnx")
    onnx.save(forecast_proto, forecast_path)
    # Judged as shipped: the exported (unrolled) graph in onnxruntime.
    session = ort.InferenceSession(forecast_path, providers=["CPUExecutionProvider"])
    predict = lambda inputs: session.run(None, {"window": inputs})[0]  # noqa: E731
    sample = x[:: max(1, len(x) // 256)]
    difference = np.max(np.abs(forecaster.predict(model, sample) - predict(sample)) / (np.abs(sample).mean(axis=1, keepdims=True) + 1))
    log(f"  exported graph vs PyTorch: max difference {difference:.1e} of the window's mean")
    real_results = []
    for name, series, first in held_out:
        result = forecaster.mase(series, first, predict)
        real_results.append((name, result))
        log(f"  MASE {name}: model {result['model']:.3f} naive {result['naive']:.3f} holt {result['holt']:.3f}")
    synth_results = [forecaster.mase(s["requests"], synth.DAY, predict, stride=4) for s in data.eval_synth]
    load_results = [forecaster.mase(s, forecaster.WINDOW - 1, predict, stride=2) for s in load_eval]
    synth_summary = [
        (f"synthetic, {len(data.eval_synth)} held-out traces (day 2)", summarize(synth_results)),
        (f"synthetic load (Poisson counts, scrapes), {len(load_eval)} held-out traces", summarize(load_results)),
    ]
    for name, result in synth_summary:
        log(f"  MASE {name}: model {result['model']:.3f} naive {result['naive']:.3f} holt {result['holt']:.3f}")

    # Golden file: small inputs and onnxruntime's outputs.
    rng = np.random.default_rng(7)
    eval_context, first_eval = data.eval_context, data.first_eval
    real_windows = np.stack([eval_context["requests"][o - 59 : o + 1] for o in (first_eval + 100, first_eval + 5000, first_eval + 12000)])
    azure_windows = np.stack([series[first + 100 - 59 : first + 101] for _, series, first in held_out[1:]])
    synth_windows = np.stack([s["requests"][o - 59 : o + 1] for s in data.eval_synth[:2] for o in (20000, 30000)])
    special = np.stack([np.full(60, 10.0), np.zeros(60), np.linspace(1, 10000, 60), 50 + 5 * rng.standard_normal(60)])
    forecast_inputs = np.concatenate([real_windows, azure_windows, synth_windows, special]).astype(np.float32)
    write_golden(forecast_path, forecast_inputs, os.path.join(golden, "traffic-forecast.json"))
    cards.forecaster_card(os.path.join(args.out, "traffic-forecast.md"), forecast_meta, real_results, synth_summary,
                          n_windows=len(x), n_load=n_load, epochs=epochs, quick=args.quick, torch=torch)


def summarize(results: list[dict]) -> dict:
    """The mean MASE figures of several traces."""
    keys = ["model", "naive", "holt", "per_step_model", "per_step_naive", "per_step_holt"]
    summary = {k: list(np.mean([r[k] for r in results], axis=0)) if k.startswith("per_step") else float(np.mean([r[k] for r in results])) for k in keys}
    summary["origins"] = int(sum(r["origins"] for r in results))
    return summary


def train_classifier(args, data: Data, golden: str) -> None:
    log("classifier: computing features")
    feats, labels = [], []
    for s in data.train_synth:
        f, idx = features.compute(s, step=2)
        feats.append(f)
        labels.append(s["label"][idx])
    feats, labels = np.concatenate(feats), np.concatenate(labels)
    unlabeled = [features.compute(s, step=2)[0] for s in data.real_train if len(s["time"]) >= features.BASELINE]
    unlabeled += [features.compute(s, step=2)[0] for s in data.extra if len(s["time"]) >= features.BASELINE]
    unlabeled = np.concatenate(unlabeled)
    log(f"  {len(feats)} labeled synthetic samples {dict(Counter(labels))}, {len(unlabeled)} unlabeled recorded")
    km, states, threshold = classifier.fit(feats, labels, unlabeled)
    log(f"  cluster states {states}, unknown beyond distance {threshold:.3f}")
    eval_feats, eval_labels = [], []
    for s in data.eval_synth:
        f, idx = features.compute(s, step=1)
        eval_feats.append(f)
        eval_labels.append(s["label"][idx])
    eval_feats, eval_labels = np.concatenate(eval_feats), np.concatenate(eval_labels)
    predicted = classifier.classify(km, states, threshold, eval_feats)
    conf = classifier.confusion(eval_labels, predicted)
    real_eval_feats, _ = features.compute(data.eval_context, step=1)
    real_eval_feats = real_eval_feats[data.first_eval - features.BASELINE + 1 :]
    real_states = Counter(classifier.classify(km, states, threshold, real_eval_feats))
    states_meta = {
        "kind": "classifier",
        "version": VERSION,
        "features": ",".join(features.FEATURES),
        "input": "features",
        "output": "distances",
        "window": str(features.CURRENT),
        "baseline_window": str(features.BASELINE),
        "min_baseline": str(features.MIN_BASELINE),
        "sample_period": "5",
        "horizon": "0",
        "normalization": "features are scale-free ratios against a per-service baseline (models/README.md); weights in-graph",
        "states": ",".join(states),
        "threshold": repr(threshold),
        "description": "KMeans traffic-state classifier: normal, flash_crowd, flood, degraded; unknown beyond threshold",
    }
    states_proto = classifier.export(km, states_meta)
    states_path = os.path.join(args.out, "traffic-states.onnx")
    onnx.save(states_proto, states_path)

    # Golden files: small inputs and onnxruntime's outputs, and features from histories.
    rng = np.random.default_rng(7)
    class_inputs = np.concatenate([
        np.zeros((1, 5)),
        eval_feats[rng.choice(len(eval_feats), 6, replace=False)],
        eval_feats[[int(np.argmax(eval_labels == s)) for s in synth.STATES]],
        np.array([[4, -4, 1, 4, 4], [-4, 4, 0, -4, -4]]),
    ]).astype(np.float32)
    write_golden(states_path, class_inputs, os.path.join(golden, "traffic-states.json"))
    write_feature_golden(data.eval_synth[0], os.path.join(golden, "traffic-states-features.json"))
    train_real_states = Counter(classifier.classify(km, states, threshold, unlabeled))
    cards.classifier_card(os.path.join(args.out, "traffic-states.md"), states_meta, conf, real_states, train_real_states,
                          n_train=len(feats), n_unlabeled=len(unlabeled), n_eval=len(data.eval_synth),
                          eval_day=EVAL_DAY, quick=args.quick)


def write_golden(model_path: str, inputs: np.ndarray, path: str) -> None:
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    name_in = session.get_inputs()[0].name
    name_out = session.get_outputs()[0].name
    outputs = session.run([name_out], {name_in: inputs})[0]
    with open(path, "w") as handle:
        json.dump({
            "model": os.path.basename(model_path),
            "input": {"name": name_in, "shape": list(inputs.shape), "data": [float(v) for v in inputs.ravel()]},
            "output": {"name": name_out, "shape": list(outputs.shape), "data": [float(v) for v in outputs.ravel()]},
            "producer": f"onnxruntime {ort.__version__}",
        }, handle)


def write_feature_golden(trace, path: str) -> None:
    """Histories per role (oldest first) and the features the runtime must compute from them."""
    cases = []
    role_sets = [features.ROLES, ["requests", "latency", "receive_bytes", "transmit_bytes"], ["requests"], ["latency", "errors"]]
    for i, (end, length) in enumerate([(20000, 720), (30000, 900), (25000, 100), (15000, 60)]):
        roles = role_sets[i % len(role_sets)]
        history = {r: trace[r][end - length : end].astype(np.float64) for r in roles}
        cases.append({
            "history": {r: [float(v) for v in h] for r, h in history.items()},
            "features": [float(v) for v in features.for_history(history)],
        })
    with open(path, "w") as handle:
        json.dump({"features": features.FEATURES, "cases": cases}, handle)


if __name__ == "__main__":
    main()
