"""The inference interface the estimator uses: named graphs, NumPy in and out.

A backend runs PicoPose's four graphs (see networks/picopose/export.py for their
inputs and outputs): "backbone", "affine", "dpt" and "flow". All arrays are float32
with the batch first; the estimator splits large batches with `run_in_chunks`.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

GRAPHS = ("backbone", "affine", "dpt", "flow")


class InferenceBackend(Protocol):
    """name: e.g. "onnxruntime"; device: "cpu" | "cuda"; precision: "fp32" | "fp16";
    weights_id: identifies the weights (sha256 of the checkpoint, or the untrained seed);
    input_names: graph -> input names in order."""

    name: str
    device: str
    precision: str
    weights_id: str
    input_names: dict[str, tuple[str, ...]]

    def run(self, graph: str, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """Outputs of `graph` for one batch, in the order of its output spec."""
        ...


def run_in_chunks(backend: InferenceBackend, graph: str, inputs: dict[str, np.ndarray], max_batch: int) -> tuple[np.ndarray, ...]:
    """`backend.run` over batches of at most `max_batch`, outputs concatenated (bounded memory)."""
    sizes = {name: len(array) for name, array in inputs.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"graph {graph}: inputs must share the batch size, got {sizes}")
    total = next(iter(sizes.values()))
    if total <= max_batch:
        return backend.run(graph, inputs)
    parts = [backend.run(graph, {k: v[i:i + max_batch] for k, v in inputs.items()}) for i in range(0, total, max_batch)]
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(parts[0])))
