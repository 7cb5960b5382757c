"""The KMeans traffic-state classifier: fit, cluster-to-state mapping, ONNX export, evaluation.

Input `features` [batch, 5] (features.FEATURES, computed by the runtime), output `distances`
[batch, k]: the Euclidean distance from the weighted features to each cluster centre. The
metadata names each cluster's state and the distance beyond which a sample is `unknown`.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.cluster import KMeans

from synth import STATES

# Error ratio lives in [0, 1] while the others are log ratios: weigh it so that 25 % errors
# counts like a factor e in rate or latency.
WEIGHTS = np.array([1.0, 1.0, 4.0, 1.0, 1.0], dtype=np.float32)
CLUSTERS = 16
THRESHOLD_QUANTILE = 0.995


def fit(features: np.ndarray, labels: np.ndarray, unlabeled: np.ndarray, seed: int = 0):
    """KMeans on class-balanced labeled samples plus the unlabeled real ones; each cluster takes
    the majority (class-balanced) label of its members, the real ones voting `normal`, or
    `unknown` if it has none."""
    rng = np.random.default_rng(seed)
    per_class = min(20000, min(int((labels == s).sum()) for s in STATES))
    chosen = np.concatenate([rng.choice(np.where(labels == s)[0], per_class, replace=False) for s in STATES])
    real = unlabeled[rng.choice(len(unlabeled), min(len(unlabeled), per_class), replace=False)]
    data = np.concatenate([features[chosen], real]) * WEIGHTS
    km = KMeans(CLUSTERS, n_init=4, random_state=seed).fit(data)
    assigned = km.predict(features * WEIGHTS)
    assigned_real = km.predict(unlabeled * WEIGHTS)
    states = []
    for c in range(CLUSTERS):
        members = labels[assigned == c]
        real_members = int(np.sum(assigned_real == c))
        if len(members) == 0 and real_members == 0:
            states.append("unknown")
            continue
        # Class-balanced vote (each class's share of its own samples that fell here), so the
        # many normal samples do not swallow small event clusters. The recorded traffic votes
        # as normal: it is real users and a bot's ordinary load, and a cluster of it that a
        # few synthetic flood samples reach must not hold real customers (a flood scaled is
        # the lesser harm).
        share = [np.sum(members == s) / max(np.sum(labels == s), 1) for s in STATES]
        share[STATES.index("normal")] += real_members / max(len(unlabeled), 1)
        states.append(STATES[int(np.argmax(share))])
    distances = km.transform(np.concatenate([features, unlabeled]) * WEIGHTS).min(axis=1)
    threshold = float(np.quantile(distances, THRESHOLD_QUANTILE))
    return km, states, threshold


def classify(km, states, threshold, features: np.ndarray) -> np.ndarray:
    distances = km.transform(features * WEIGHTS)
    nearest = distances.argmin(axis=1)
    return np.where(distances.min(axis=1) > threshold, "unknown", np.array(states)[nearest])


def export(km, metadata: dict[str, str]) -> onnx.ModelProto:
    proto = convert_sklearn(
        km, initial_types=[("weighted", FloatTensorType([None, len(WEIGHTS)]))], target_opset={"": 17, "ai.onnx.ml": 3}
    )
    graph = proto.graph
    # Weigh the features first, and clamp the squared distance at 0 before the square root
    # (float rounding can make it a hair negative at a centre, and sqrt would give NaN).
    sqrt = next(n for n in graph.node if n.op_type == "Sqrt")
    squared = sqrt.input[0]
    sqrt.input[0] = "squared_clamped"
    nodes = [helper.make_node("Mul", ["features", "feature_weights"], ["weighted"])]
    nodes += [n for n in graph.node if n.op_type != "ArgMin"]
    nodes.insert(len(nodes) - 1, helper.make_node("Max", [squared, "zero"], ["squared_clamped"]))
    sqrt.output[0] = "distances"
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend([
        numpy_helper.from_array(WEIGHTS, "feature_weights"),
        numpy_helper.from_array(np.zeros((), dtype=np.float32), "zero"),
    ])
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", len(WEIGHTS)]))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("distances", TensorProto.FLOAT, ["batch", CLUSTERS]))
    del proto.opset_import[:]
    proto.opset_import.append(helper.make_opsetid("", 17))
    proto.producer_name = "swarmpilot models/train"
    graph.name = "traffic_states"
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def confusion(truth: np.ndarray, predicted: np.ndarray):
    rows = STATES
    cols = STATES + ["unknown"]
    matrix = np.array([[int(np.sum((truth == r) & (predicted == c))) for c in cols] for r in rows])
    per_state = {}
    for i, s in enumerate(STATES):
        tp = matrix[i, i]
        predicted_as = int(np.sum(predicted == s))
        per_state[s] = {
            "precision": float(tp / predicted_as) if predicted_as else float("nan"),
            "recall": float(tp / matrix[i].sum()) if matrix[i].sum() else float("nan"),
            "support": int(matrix[i].sum()),
        }
    return rows, cols, matrix, per_state
