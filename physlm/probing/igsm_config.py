"""What the iGSM V-probing stage fits and how (one frozen config; spec part2_igsm.md §3)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from physlm.config import Config
from physlm.probing.fit import FitConfig
from physlm.probing.igsm_examples import CELLS, POPULATIONS, TARGETS, Cell, Population, Target

CONTROLS = ("random_init", "majority")

IGSM_VPROBE_FIT = FitConfig(lr=1e-3, weight_decay=0.01, batch_size=32, max_epochs=40, patience=6)
"""The V-probe optimiser for iGSM (the paper: lr 0.002, wd 0.01, 100k steps of batch 256). Early stopping on
held-out problems ends a fit once the held-out (balanced) accuracy has not improved for ``patience`` epochs (the
best epoch's weights are kept; the held-out set is small, hence the patience); the epoch bound is far above
where the recorded test-accuracy curves flatten (``probe_igsm.json``: about 6-10 epochs of 1,200 draws at
lr 1e-3 on the CPU presets, where lr 3e-3 was noisy and 3e-4 needed twice as many epochs for the same
plateau)."""


@dataclasses.dataclass(frozen=True)
class IGSMProbeConfig(Config):
    """What the iGSM V-probing stage fits and how."""

    n_train: int = 200
    """train-split problems to fit probes on (10% of the problems held out for early stopping)"""
    n_test: int = 100
    """test-split problems per cell to score on (bootstrap intervals resample these)"""
    draws_per_problem: int = 10
    """(position, parameter) draws per problem, target and population, without replacement (the paper: at
    most 10)"""
    targets: tuple[Target, ...] = TARGETS
    layerwise: tuple[Target, ...] = ("nece", "dep")
    """targets probed at every layer; the others at the final layer only (each layer is a separate fit)"""
    rank: int = 8
    """rank of the embedding update (the paper: 8)"""
    embedding_update: Literal["all", "suffix"] = "all"
    """all: the paper's V-probe, ΔE = A·B added to the whole input embedding matrix, so every input token
    (prefix included) changes and each example needs a full forward and backward pass; suffix: the update
    applies to the appended suffix only, the prefix's keys and values are computed once per problem and
    cached (a deviation, tens of times cheaper on a CPU)"""
    populations: tuple[Population, ...] = POPULATIONS
    """test populations (probes always train on all_param): all_param (the official population), G_d (the
    dependency graph only), necessary / unnecessary A inside G_d (dep and can_next only)"""
    cells: tuple[Cell, ...] = CELLS
    """test cells: in_dist (op <= max_op), op=max, ood (the preset's first OOD op), reask (re-asked questions
    at that op); cells whose problems do not fit the model's context are skipped with a log line"""
    distance_bins: int = 8
    """layer-wise nece on necessary parameters at distance t = 1..distance_bins from the query (Part 2.1
    Fig 10/14; rows with level = t); 0 = off"""
    controls: tuple[Literal["random_init", "majority"], ...] = CONTROLS
    random_init_seed: int | None = None
    """weight seed of the random-init control model; None = the trained model's seed + 1"""
    fit: FitConfig = IGSM_VPROBE_FIT
    balanced_loss: bool = True
    """weight the binary targets' cross-entropy by inverse class frequency (nece is ~25% positive, dep ~15%):
    without it a probe on weak features settles on the majority class and every accuracy equals the baseline"""
    curves: bool = True
    """record the test accuracy after every epoch of the trained model's final-layer fits (probe_igsm.json),
    to check that the budget has converged"""
    first_wrong: bool = False
    """Part 2.1 Fig 8b: generate greedy solutions, find each one's first wrong parameter and read a can_next
    probe right after "Define <param> as"; reports how often it says false where the truth is false"""
    first_wrong_problems: int = 60
    """test problems (at the first OOD op) whose greedy solutions the first-wrong probe reads"""
    n_boot: int = 500
    """bootstrap resamples of test problems for the 95% intervals"""
    seed: int = 0
    """seeds the probe problems, the draws, probe initialisation and the bootstrap"""
    preset: str | None = None
    """iGSM preset of the probe problems; None = the one the model was trained on"""
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.n_train < 2 or self.n_test < 1:
            raise ValueError(f"need n_train >= 2 and n_test >= 1, got {self.n_train} and {self.n_test}")
        if self.draws_per_problem < 1 or self.rank < 1:
            raise ValueError("draws_per_problem and rank must be >= 1")
        unknown = [t for t in self.layerwise if t not in self.targets]
        if unknown:
            raise ValueError(f"layerwise targets {unknown} are not among targets {self.targets}")
        if "all_param" not in self.populations:
            raise ValueError("populations must include all_param (the population probes train on)")
        if "in_dist" not in self.cells:
            raise ValueError("cells must include in_dist (the headline cell)")
        if self.distance_bins < 0 or self.first_wrong_problems < 1:
            raise ValueError("distance_bins must be >= 0 and first_wrong_problems >= 1")
