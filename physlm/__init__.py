"""physlm: train small transformers on synthetic data with known structure, then look inside them.

``import physlm`` gives the notebook API: ``physlm.load``, ``physlm.probe``, ``physlm.evaluate_generation``,
``physlm.attention_stats``, ``physlm.train`` (:mod:`physlm.api`) and the typed results of :mod:`physlm.results`.
The package itself holds the core shared by every stage (configs, run directories, provenance); the stages are
the subpackages ``physlm.tasks``, ``physlm.training``, ``physlm.probing``, ``physlm.analysis`` and
``physlm.experiments``.
"""

__version__ = "0.1.0"

from physlm.config import Config, config_from_dict, load_config  # noqa: E402
from physlm.rundir import RunDir, RunDirExistsError  # noqa: E402

# The notebook API (``physlm.load``, ``physlm.probe``, ...) is resolved on first access by ``__getattr__`` below.
# It must not be imported here: every submodule imports this package (through physlm.config), and the API
# imports torch, TransformerLens and the probing/training stages, which would then import each other in a cycle
# (and make ``import physlm.config`` cost seconds).
_LAZY = {
    "load": "physlm.api",
    "probe": "physlm.api",
    "evaluate_generation": "physlm.api",
    "attention_stats": "physlm.api",
    "train": "physlm.api",
    "fit_vprobes": "physlm.api",
    "Model": "physlm.api",
    "ProbeResults": "physlm.results",
    "ProbeRow": "physlm.results",
    "GenerationResults": "physlm.results",
    "IGSMEvalResults": "physlm.results",
    "read_results": "physlm.results",
    "write_results": "physlm.results",
    "list_zoo": "physlm.experiments.zoo",
}

__all__ = [
    "Config", "config_from_dict", "load_config", "RunDir", "RunDirExistsError", "__version__", *sorted(_LAZY)
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'physlm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
