"""Streamed activation collection and probes, with controls by default.

Imports are lazy so that ``import probing`` (and the CLI's help) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "collect_activations": "probing.activations",
    "Activations": "probing.activations",
    "layer_hook": "probing.activations",
    "SentenceLayout": "probing.align",
    "PackedLayout": "probing.align",
    "gather_labels": "probing.align",
    "FitConfig": "probing.fit",
    "LinearProbe": "probing.linear",
    "MultiHeadLinearProbe": "probing.multihead",
    "LocalProbe": "probing.multihead",
    "LowRankEmbeddingProbe": "probing.vprobe",
    "TableClassifier": "probing.baselines",
    "control_task": "probing.baselines",
    "classification_metrics": "probing.metrics",
    "ProbeConfig": "probing.cfg_recipe",
    "run_cfg_probes": "probing.cfg_recipe",
    "layerwise_figure": "probing.plots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'probing' has no attribute {name!r}")
