"""Streamed activation collection and probes, with controls by default.

Imports are lazy so that ``import probing`` (and the CLI's help) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "collect_activations": "physlm.probing.activations",
    "Activations": "physlm.probing.activations",
    "layer_hook": "physlm.probing.activations",
    "SentenceLayout": "physlm.probing.align",
    "PackedLayout": "physlm.probing.align",
    "gather_labels": "physlm.probing.align",
    "FitConfig": "physlm.probing.fit",
    "LinearProbe": "physlm.probing.linear",
    "MultiHeadLinearProbe": "physlm.probing.multihead",
    "LocalProbe": "physlm.probing.multihead",
    "LowRankEmbeddingProbe": "physlm.probing.vprobe",
    "TableClassifier": "physlm.probing.baselines",
    "control_task": "physlm.probing.baselines",
    "classification_metrics": "physlm.probing.metrics",
    "ProbeData": "physlm.probing.cfg_data",
    "sample_probe_data": "physlm.probing.cfg_data",
    "ProbeConfig": "physlm.probing.cfg_recipe",
    "run_cfg_probes": "physlm.probing.cfg_recipe",
    "IGSMProbeConfig": "physlm.probing.igsm_config",
    "run_igsm_probes": "physlm.probing.igsm_recipe",
    "layerwise_figure": "physlm.probing.plots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'physlm.probing' has no attribute {name!r}")
