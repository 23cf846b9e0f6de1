"""The Part 2.1 V-probing recipe for iGSM (spec part2_igsm.md §3): what the model "knows" mid-problem.

A thin facade over the modules that implement it, so notebooks and scripts keep one import path:

* :mod:`physlm.probing.igsm_examples`: (problem, position, parameter) draws with their labels, populations,
  test cells;
* :mod:`physlm.probing.igsm_cache`: the prefix cache of the suffix-only variant;
* :mod:`physlm.probing.igsm_config` and :mod:`physlm.probing.igsm_fit`: the config, the paper's
  whole-embedding V-probe and the fitting loop;
* :mod:`physlm.probing.igsm_recipe`: fit / evaluate / controls / result rows, ``run_igsm_probes``;
* :mod:`physlm.probing.igsm_first_wrong`: the can_next probe on the first wrong parameter (Fig 8b);
* :mod:`physlm.probing.igsm_figures`: figures and tables of the rows.
"""

from physlm.probing.igsm_cache import CachedVProbe, PrefixCache
from physlm.probing.igsm_config import CONTROLS, IGSM_VPROBE_FIT, IGSMProbeConfig
from physlm.probing.igsm_examples import (
    CELLS,
    N_CLASSES,
    POPULATIONS,
    STEP_TARGETS,
    TARGETS,
    Target,
    VProbeExamples,
    assemble_examples,
    build_examples,
    cell_configs,
    distance_examples,
    draw_examples,
    label_of,
    populations_for,
    probe_position,
    probe_records,
    record_document,
)
from physlm.probing.igsm_figures import (
    cells_table,
    distance_figure,
    headline_metric,
    is_headline,
    layerwise_igsm_figure,
    write_igsm_figures,
)
from physlm.probing.igsm_fit import FittedVProbe, FullVProbe, fit_vprobe, train_probe
from physlm.probing.igsm_recipe import (
    INFO_FILE,
    majority_prediction,
    probe_cells,
    probe_igsm_models,
    problem_beliefs,
    result_rows,
    run_igsm_probes,
    score,
)
from physlm.results import RESULTS_FILE

__all__ = [
    "CELLS",
    "CONTROLS",
    "IGSM_VPROBE_FIT",
    "INFO_FILE",
    "N_CLASSES",
    "POPULATIONS",
    "RESULTS_FILE",
    "STEP_TARGETS",
    "TARGETS",
    "CachedVProbe",
    "FittedVProbe",
    "FullVProbe",
    "IGSMProbeConfig",
    "PrefixCache",
    "Target",
    "VProbeExamples",
    "assemble_examples",
    "build_examples",
    "cell_configs",
    "cells_table",
    "distance_examples",
    "distance_figure",
    "draw_examples",
    "fit_vprobe",
    "headline_metric",
    "is_headline",
    "label_of",
    "layerwise_igsm_figure",
    "majority_prediction",
    "populations_for",
    "probe_cells",
    "probe_igsm_models",
    "probe_position",
    "probe_records",
    "problem_beliefs",
    "record_document",
    "result_rows",
    "run_igsm_probes",
    "score",
    "train_probe",
    "write_igsm_figures",
]
