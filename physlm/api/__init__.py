"""The notebook-first API: verbs that take and return objects (``import physlm`` exposes them lazily).

* :func:`load` — a zoo entry by name, or a run directory → :class:`Model` (the HookedTransformer ``.model``, its
  token table, its task with ``sample(n, seed)`` / ``encode(...)``);
* :func:`probe` → :class:`physlm.results.ProbeResults` (``.table()``, ``.figure(target)``, ``.to_csv(path)``),
  controls included;
* :func:`evaluate_generation` → :class:`physlm.results.GenerationResults` / ``IGSMEvalResults``;
* :func:`attention_stats` → :class:`AttentionResults`;
* :func:`train` → :class:`Model`;
* :func:`fit_vprobes` → :class:`VProbes`, an iGSM model's nece/dep probes to ask about single problems.
"""

from physlm.api.analysis import AttentionResults, attention_stats, evaluate_generation
from physlm.api.igsm import VProbes, fit_vprobes
from physlm.api.model import CFGTaskSpec, IGSMSample, IGSMTaskSpec, Model, load
from physlm.api.probe import probe
from physlm.api.train import train

__all__ = [
    "AttentionResults",
    "CFGTaskSpec",
    "IGSMSample",
    "IGSMTaskSpec",
    "Model",
    "VProbes",
    "attention_stats",
    "evaluate_generation",
    "fit_vprobes",
    "load",
    "probe",
    "train",
]
