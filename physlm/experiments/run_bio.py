"""`physlm run bio`: Part 3.1's headline experiment end to end (knowledge storage versus extraction).

For each dataset (an augmentation of the same people's biographies, default ``single`` and ``multi5+permute``) a
model is BIO-pretrained from scratch, checked for memorisation, QA-finetuned on P_train, evaluated on P_test's
questions (exact match) and P-/Q-probed; one report then compares the datasets. The paper's claim under test
(Part 3.1 §2.4, spec part3_knowledge.md): a model pretrained on ``single`` memorises every biography yet answers
questions about held-out people poorly (9.7%), while ``multi5+permute`` makes the same knowledge extractable (96.6%).

Layout of ``<out>/``::

    config.json, log.txt        the whole experiment's config and log
    <dataset>/                  one sub-run per dataset, on the shared skeleton :mod:`physlm.experiments.recipe`:
        config.json             its own config (the experiment restricted to that dataset: re-runnable alone)
        checkpoints/            the BIO-pretrained model (safetensors)
        metrics.jsonl, log.txt
        qa_results.csv          BIO memorisation rows (memorisation stage) and QA rows (qa stage)
        finetuned/<protocol>/   the QA-finetuned model, a checkpoint directory like checkpoints/
        probe_results.csv       P- and Q-probes of the *pretrained* model, with controls
        report.html, figures/   the dataset's own report
        COMPLETE.<stage>        train, memorisation, qa, probe, report
    qa_results.csv              every dataset's rows (dataset, protocol, group, attribute, metric, value, ci_low,
                                ci_high)
    probe_results.csv           every dataset's probe rows, with an extra ``dataset`` column
    report.html, figures/*.png  the comparison report (:mod:`physlm.analysis.report_bio`)
    COMPLETE.report

Every dataset uses the same people and the same P_train/P_test split (``--world-seed``); only the wording of their
biographies differs. A crashed run keeps its finished sub-runs: ``--resume`` (same ``--out``, same options) keeps
every dataset whose sub-run completed and reruns the others from scratch.

Training runs in one process (torchrun is not supported by this recipe).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from physlm.config import Config
from physlm.experiments import recipe
from physlm.experiments.recipe import ModelOptions, Recipe, Stage, StageContext, TrainOptions, TrainPlan
from physlm.probing.bio_probe import BioProbeConfig
from physlm.rundir import RunDir
from physlm.training.bio_finetune import QAFinetuneConfig
from physlm.training.train_config import TrainConfig

Protocol = Literal["lora", "full"]
SkippableStage = Literal["memorisation", "qa", "probe"]
FINETUNED_DIR = "finetuned"
"""Sub-run folder of the QA-finetuned models: ``finetuned/<protocol>/`` is a checkpoints directory."""


@dataclasses.dataclass(frozen=True)
class BioTrainOptions(TrainOptions):
    """How `physlm run bio` BIO-pretrains (CPU-sized starting values, to be tuned; the paper trains GPT-2 small
    for 80K-200K steps of 96 x 512 tokens, spec part3_knowledge.md §6.2)."""

    steps: int = 800
    batch_size: int = 16
    lr: float = 2e-3
    """peak learning rate"""
    weight_decay: float = 0.1
    """AdamW weight decay (the paper's 0.1)"""
    warmup_steps: int = 80
    """linear warm-up steps"""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """decay after warm-up (cosine to 0.1x the peak, as the paper)"""
    seed: int = 0
    """seed of the model weights and the training stream (the people are --world-seed's)"""


@dataclasses.dataclass(frozen=True)
class BioEvalConfig(Config):
    """How the memorisation and QA stages measure."""

    memorisation_entries: int = 500
    """biography entries drawn (as in pretraining) for the BIO first-token check"""
    beam_people: int = 100
    """P_test people whose questions are also answered by beam search (slow: one forward per token); 0: none"""
    beam: int = 4
    """beam width (the paper's 4)"""
    train_people: bool = True
    """also score P_train's questions (in distribution: did fine-tuning itself work?)"""
    n_boot: int = 1000
    """bootstrap resamples over people for the intervals of the mean rows"""
    seed: int = 0
    """seeds the memorisation entries, the beam subsample and the bootstrap"""

    def __post_init__(self) -> None:
        if self.memorisation_entries < 1 or self.beam_people < 0 or self.beam < 1 or self.n_boot < 1:
            raise ValueError("memorisation_entries, beam and n_boot must be >= 1 and beam_people >= 0")


@dataclasses.dataclass(frozen=True)
class BioExperimentConfig(Config):
    """Everything `physlm run bio` does (CPU-sized starting values: tune steps and people to your budget)."""

    datasets: tuple[str, ...] = ("single", "multi5+permute")
    """biography augmentations to compare, e.g. single, single+permute5, multi5, multi5+permute (Part 3.1 names)"""
    n_people: int = 250
    """people of the world (the paper: 100,000); half are P_train, half P_test. 250 because at 800 steps that is
    ~187 exposures, enough for multi5+permute to memorise (99.2% first-token); 500 people gave ~94 exposures
    and 65%"""
    world_seed: int = 0
    """seeds the people, their wordings and the P_train/P_test split (the same people for every dataset)"""
    model: ModelOptions = ModelOptions()
    """the paper uses GPT-2 small (gpt_rot-gpt2 is its rotary variant)"""
    n_ctx: int = 256
    """model context: must hold a biography entry and a QA row"""
    seq_len: int = 256
    """tokens per packed pretraining window (the paper: 512)"""
    train: Annotated[BioTrainOptions, tyro.conf.OmitArgPrefixes] = BioTrainOptions()
    finetune: QAFinetuneConfig = QAFinetuneConfig()
    """QA fine-tuning on P_train (its mode is replaced by each of --protocols)"""
    protocols: tuple[Protocol, ...] | None = None
    """fine-tuning protocols to run and compare (lora: the paper's reported one; full); default: --finetune.mode"""
    eval: BioEvalConfig = BioEvalConfig()
    probe: BioProbeConfig = BioProbeConfig()
    """P- and Q-probes of the pretrained model, with random-init and majority controls"""
    skip: tuple[SkippableStage, ...] = ()
    """stages to leave out: memorisation, qa (fine-tuning and its evaluation), probe"""
    png: bool = True
    """also write figures/*.png next to each report.html (needs kaleido and a Chromium executable)"""

    def __post_init__(self) -> None:
        from physlm.tasks.bio.augmentation import parse_augmentation

        if not self.datasets:
            raise ValueError("datasets is empty: name at least one augmentation, e.g. --datasets single")
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"datasets has duplicates: {self.datasets}")
        for name in self.datasets:
            try:
                parse_augmentation(name)  # an unknown name fails here, before anything trains
            except ValueError as exc:
                raise ValueError(f"--datasets: {exc}") from None
        if self.n_people < 2:
            raise ValueError(f"n_people must be >= 2 (P_train and P_test both need people), got {self.n_people}")
        if self.seq_len > self.n_ctx:
            raise ValueError(f"seq_len ({self.seq_len}) must not exceed the model context n_ctx ({self.n_ctx})")
        if self.protocols is not None and (not self.protocols or len(set(self.protocols)) != len(self.protocols)):
            raise ValueError(f"protocols must be distinct values among lora, full, got {self.protocols}")

    @property
    def finetune_protocols(self) -> tuple[Protocol, ...]:
        """The fine-tuning protocols run, in order."""
        return self.protocols if self.protocols is not None else (self.finetune.mode,)

    @property
    def dataset(self) -> str:
        """The one dataset of a per-dataset config (:meth:`for_dataset`)."""
        if len(self.datasets) != 1:
            raise ValueError(f"a sub-run config names one dataset, this one names {self.datasets}")
        return self.datasets[0]

    def for_dataset(self, dataset: str) -> BioExperimentConfig:
        """The config of one dataset's sub-run: this experiment restricted to ``dataset``."""
        return self.replace(datasets=(dataset,))


def protocol_name(protocol: str) -> str:
    """The ``protocol`` column of QA rows: ``pretrain+lora``, ``pretrain+full``."""
    return f"pretrain+{protocol}"


def task_options(config: BioExperimentConfig) -> dict[str, Any]:
    """The bio task's build options of a per-dataset config (recorded with the run and its checkpoints)."""
    return {"n_people": config.n_people, "augmentation": config.dataset, "seed": config.world_seed}


@functools.lru_cache(maxsize=2)
def _bio_task(n_people: int, augmentation: str, seed: int) -> Any:
    # one task (and world) per dataset for both the train stage and the analysis stages: the same people,
    # wordings and split by construction, built once
    from physlm.training.tasks_registry import build_task

    return build_task("bio", n_people=n_people, augmentation=augmentation, seed=seed)


def bio_task(config: BioExperimentConfig) -> Any:
    """The bio task (physlm.tasks.bio.BioTask) of a per-dataset config."""
    options = task_options(config)
    return _bio_task(options["n_people"], options["augmentation"], options["seed"])


def train_config(config: BioExperimentConfig) -> TrainConfig:
    """The trainer's config: packed ``seq_len`` windows of randomly drawn entries, cosine to 0.1x the peak."""
    return recipe.train_config(
        config.train, seq_len=config.seq_len, cosine_floor=0.1,
        warmup_steps=min(config.train.warmup_steps, max(0, config.train.steps - 1)),
    )


def model_config(config: BioExperimentConfig, d_vocab: int):  # noqa: ANN201 (training.ModelConfig)
    """The model preset with the bio vocabulary, the experiment's context and seed, and any overrides."""
    return recipe.model_config(config.model, d_vocab, config.n_ctx, config.train.seed)


def _plan(config: BioExperimentConfig) -> TrainPlan:
    task = bio_task(config)
    tc, mc = train_config(config), model_config(config, task.token_table.d_vocab)
    world = task.world
    # multi-infinity people have no fixed entries: they count as one (as pretraining draws them)
    n_entries = sum(world.n_entries(p) or 1 for p in range(len(world.people)))
    return TrainPlan(
        task_name="bio",
        task_options=task_options(config),
        task=task,
        train=tc,
        model=mc,
        model_preset=config.model.preset,
        intro=(
            f"bio dataset {config.dataset}: {config.n_people} people ({len(world.train_people)} P_train, "
            f"{len(world.test_people)} P_test), {n_entries} biography entries; model "
            f"{recipe.describe_model(config.model.preset, mc)}, {tc.steps} steps x {tc.batch_size} x "
            f"{config.seq_len} tokens",
        ),
    )


# -- stages --------------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _merge_qa_rows(run: RunDir, rows: Sequence[Any], replaces: Callable[[Any], bool]) -> None:
    """Put ``rows`` into the sub-run's qa_results.csv, dropping the old rows ``replaces`` picks (a stage rerun
    replaces its own rows and keeps the other stage's)."""
    from physlm.analysis.bio_eval import QA_RESULTS_FILE, read_qa_results, write_qa_results

    path = run.path / QA_RESULTS_FILE
    old = read_qa_results(path) if path.is_file() else []
    write_qa_results(path, [r for r in old if not replaces(r)] + list(rows))


def _memorisation(run: RunDir, context: StageContext) -> None:
    from physlm.analysis.bio_eval import MEAN, bio_memorisation, memorisation_rows

    config: BioExperimentConfig = context.config
    world = bio_task(config).world
    hits = bio_memorisation(context.model, world, n_entries=config.eval.memorisation_entries, seed=config.eval.seed)
    rows = memorisation_rows(hits, config.dataset, n_boot=config.eval.n_boot, seed=config.eval.seed)
    _merge_qa_rows(run, rows, lambda r: r.metric == "bio_first_token")
    mean = next(r for r in rows if r.attribute == MEAN)
    run.log(f"BIO memorisation ({config.dataset}): first-token accuracy of the values inside biographies "
            f"{_pct(mean.value)} [{_pct(mean.ci_low)}, {_pct(mean.ci_high)}] (the paper trains to > 99%); "
            + ", ".join(f"{a} {_pct(h.accuracy)}" for a, h in hits.items()))


def _merge_accuracies(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One {attribute: QAAccuracy} from evaluations of disjoint chunks of people."""
    from physlm.analysis.bio_eval import Hits, QAAccuracy
    from physlm.tasks.bio.pools import ATTRIBUTES

    def join(hits: Sequence[Hits], attribute: str) -> Hits:
        return Hits(attribute, tuple(p for h in hits for p in h.people), tuple(c for h in hits for c in h.correct))

    out = {}
    for attribute in ATTRIBUTES:
        found = [part[attribute] for part in parts if attribute in part]
        if found:
            out[attribute] = QAAccuracy(attribute, join([f.exact for f in found], attribute),
                                        join([f.first_token for f in found], attribute))
    return out


def beam_people(people: Sequence[int], n: int, seed: int) -> list[int]:
    """``n`` of ``people`` (all when fewer), seeded, sorted: the beam-search subsample (whole people, so each
    attribute's questions stay one per person and its Wilson interval holds)."""
    if n >= len(people):
        return sorted(people)
    return sorted(random.Random(f"physlm/bio/beam-people/{seed}").sample(list(people), n))


def beam_accuracy(model: Any, world: Any, people: Sequence[int], beam: int, chunk: int = 8) -> dict[str, Any]:
    """Beam-search exact match of every attribute's question for ``people``, ``chunk`` people at a time under
    a progress bar (beam search costs one forward pass per generated token)."""
    from tqdm.auto import tqdm

    from physlm.analysis.bio_eval import qa_accuracy_beam, qa_items_of

    parts = []
    for start in tqdm(range(0, len(people), chunk), desc=f"qa beam-{beam}", unit="chunk", dynamic_ncols=True):
        parts.append(qa_accuracy_beam(model, qa_items_of(world, people[start : start + chunk]), beam=beam))
    return _merge_accuracies(parts)


def save_finetuned(run: RunDir, protocol: str, result: Any) -> Path:
    """Write the QA-finetuned model to ``finetuned/<protocol>/`` as a checkpoint (safetensors weights and the
    pretrained checkpoint's record plus a ``finetune`` entry), loadable with ``physlm.training.load_model``."""
    from physlm.training.checkpoint import CHECKPOINTS_DIR, latest_checkpoint, read_checkpoint_meta, save_checkpoint

    base = latest_checkpoint(run.path / CHECKPOINTS_DIR)
    if base is None:
        raise FileNotFoundError(f"{run.path} has no pretrained checkpoint to fine-tune from")
    meta = read_checkpoint_meta(base, verify=False)
    base_step = meta["step"]
    # what save_checkpoint writes itself, and what only describes the pretraining stream (a finetuned
    # checkpoint is not a point to resume pretraining from)
    for key in ("format", "format_version", "step", "created", "versions", "git_sha", "files", "data_state",
                "train_loss", "eval_loss"):
        meta.pop(key, None)
    meta["finetune"] = {
        "protocol": protocol_name(protocol),
        "config": result.config.to_dict(),
        "base_checkpoint": str(base.relative_to(run.path)),
        "base_step": base_step,
        "n_items": result.n_items,
        "n_trained_parameters": result.n_trained_parameters,
        "history": [dataclasses.asdict(h) for h in result.history],
    }
    return save_checkpoint(run.path / FINETUNED_DIR / protocol, result.config.steps, result.model.state_dict(), meta,
                           keep=1)


def _qa_summary(dataset: str, protocol: str, rows: Sequence[Any], beam: int, n_beam: int) -> str:
    """The log line of one protocol's QA evaluation: the means with their intervals, P_test per attribute."""
    from physlm.analysis.bio_eval import MEAN
    from physlm.analysis.report_bio import format_ci, qa_row

    def mean(group: str, metric: str) -> str:
        return format_ci(qa_row(rows, dataset, protocol, group, metric))

    line = f"QA exact match ({dataset}, {protocol}): P_test mean {mean('test_people', 'exact_greedy')} greedy"
    if n_beam:
        line += f", {mean('test_people', f'exact_beam{beam}')} beam-{beam} on {n_beam} people"
    if any(r.group == "train_people" for r in rows):
        line += f"; P_train mean {mean('train_people', 'exact_greedy')}"
    per_attribute = [r for r in rows if (r.group, r.metric) == ("test_people", "exact_greedy") and r.attribute != MEAN]
    return line + "; P_test per attribute: " + ", ".join(f"{r.attribute} {_pct(r.value)}" for r in per_attribute)


def _qa(run: RunDir, context: StageContext) -> None:
    from physlm.analysis.bio_eval import qa_accuracy, qa_rows
    from physlm.training.bio_finetune import finetune_qa

    config: BioExperimentConfig = context.config
    world = bio_task(config).world
    ev = config.eval
    for protocol in config.finetune_protocols:
        name = protocol_name(protocol)
        ft = config.finetune.replace(mode=protocol)
        start = time.perf_counter()
        result = finetune_qa(context.model, world, ft, progress=True)
        path = save_finetuned(run, protocol, result)
        last = result.history[-1].loss if result.history else float("nan")
        run.log(f"QA fine-tuning ({name}): {ft.steps} steps on {result.n_items} P_train QA pairs, "
                f"{result.n_trained_parameters} trained parameters, final answer loss {last:.4f} in "
                f"{time.perf_counter() - start:.0f} s → {path}")
        model = result.model
        rows = qa_rows(qa_accuracy(model, world, world.test_people), config.dataset, name, "test_people",
                       n_boot=ev.n_boot, seed=ev.seed)
        if ev.train_people:
            rows += qa_rows(qa_accuracy(model, world, world.train_people), config.dataset, name, "train_people",
                            n_boot=ev.n_boot, seed=ev.seed)
        picked = beam_people(world.test_people, ev.beam_people, ev.seed) if ev.beam_people else []
        if picked:
            rows += qa_rows(beam_accuracy(model, world, picked, ev.beam), config.dataset, name, "test_people",
                            exact_metric=f"exact_beam{ev.beam}", first_token=False, n_boot=ev.n_boot, seed=ev.seed)
        _merge_qa_rows(run, rows, lambda r, name=name: r.protocol == name)

        run.log(_qa_summary(config.dataset, name, rows, ev.beam, len(picked)))
        del model, result


def _probe(run: RunDir, context: StageContext) -> None:
    import numpy as np

    from physlm.probing.bio_probe import p_probe_matrix, run_bio_probes
    from physlm.results import RESULTS_FILE, write_results

    config: BioExperimentConfig = context.config
    world = bio_task(config).world
    rows = run_bio_probes(context.model, world, config.probe, kinds=("P", "Q"), controls=True, progress=True,
                          model_config=run.trained_on().model_config)
    write_results(run.path / RESULTS_FILE, rows)
    grid = p_probe_matrix(rows, level="whole")
    first = float(np.nanmean(grid.values[0]))  # the birth_date position: the first one in single's fixed order
    q = [r["value"] for r in rows if r.get("probe") == "Q" and r["features"] == "trained" and r["level"] == 1]
    run.log(f"probes ({config.dataset}, pretrained model, P_test people): P-probe of whole attributes at the "
            f"first position (before birth_date) mean {_pct(first)}; Q-probe (name only) mean "
            f"{_pct(sum(q) / len(q)) if q else 'n/a'}")


def _report(run: RunDir, context: StageContext) -> Path:
    from physlm.analysis.report_bio import build_bio_report

    return build_bio_report(run.path, timings=context.timings_so_far(), png=context.config.png)


RECIPE = Recipe(
    name="bio",
    plan=_plan,
    stages=(
        Stage("memorisation", _memorisation, needs_model=True),
        Stage("qa", _qa, needs_model=True),
        Stage("probe", _probe, needs_model=True),
    ),
    report=_report,
)
"""One dataset's recipe: train → memorisation → qa → probe → report."""
STAGES = RECIPE.stage_names


# -- the whole experiment ------------------------------------------------------------------------------
def _sub_run_finished(path: Path, config: BioExperimentConfig) -> bool:
    """Whether a dataset's sub-run completed every stage it was asked for."""
    wanted = [s for s in STAGES if s not in config.skip]
    return all((path / f"COMPLETE.{s}").exists() for s in wanted)


def _open_for_resume(out: Path, config: BioExperimentConfig) -> RunDir:
    run = RunDir.open(out)
    recorded = run.read_record()["configs"].get("experiment") or {}
    given = json.loads(config.to_json())
    changed = sorted(k for k in set(recorded) | set(given) if recorded.get(k) != given.get(k))
    if changed:
        raise ValueError(f"--resume needs the options {out} was started with; these differ: {', '.join(changed)} "
                         f"(recorded in {out / RunDir.CONFIG_FILE})")
    run.record({})
    return run


def collect_results(out: Path, datasets: Sequence[str]) -> tuple[Path, Path]:
    """Write ``<out>/qa_results.csv`` (every dataset's rows) and ``<out>/probe_results.csv`` (every dataset's
    probe rows with a ``dataset`` column first among the extra columns); returns both paths."""
    from physlm.analysis.bio_eval import QA_RESULTS_FILE, read_qa_results, write_qa_results
    from physlm.analysis.report_html import read_result_rows
    from physlm.results import RESULTS_FILE, write_results

    qa, probes = [], []
    for dataset in datasets:
        sub = out / dataset
        if (sub / QA_RESULTS_FILE).is_file():
            qa += read_qa_results(sub / QA_RESULTS_FILE)
        probes += [dataclasses.replace(r, extra=(("dataset", dataset), *r.extra))
                   for r in read_result_rows(sub / RESULTS_FILE)]
    return write_qa_results(out / QA_RESULTS_FILE, qa), write_results(out / RESULTS_FILE, probes)


def run_bio_experiment(out: Path, config: BioExperimentConfig, overwrite: bool = False,
                       resume: bool = False) -> RunDir:
    """Run every dataset's sub-run into ``out/<dataset>/``, then collect the results and write the comparison
    report (see the module docstring). Returns the top-level run directory.

    ``overwrite`` replaces an existing ``out``; ``resume`` reopens it (same config required), keeps the datasets
    whose sub-run finished and reruns the others from scratch.
    """
    from physlm.analysis.report_bio import build_bio_comparison_report, headline_lines

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError("physlm run bio trains in one process; torchrun is not supported by this recipe")
    if overwrite and resume:
        raise ValueError("--overwrite and --resume exclude each other: one replaces the run, the other continues it")
    start = time.perf_counter()
    out = Path(out)
    top = _open_for_resume(out, config) if resume and out.exists() else RunDir.create(
        out, {"experiment": config}, overwrite=overwrite)
    top.log(f"physlm run bio → {out}: datasets {', '.join(config.datasets)}; {config.n_people} people, "
            f"model {config.model.preset}, {config.train.steps} pretraining steps, fine-tuning "
            f"{', '.join(protocol_name(p) for p in config.finetune_protocols)} ({config.finetune.steps} steps)")
    timings: dict[str, float] = {}
    for i, dataset in enumerate(config.datasets, 1):
        sub = out / dataset
        if resume and _sub_run_finished(sub, config):
            top.log(f"[{i}/{len(config.datasets)}] {dataset}: finished earlier, kept ({sub})")
            continue
        top.log(f"[{i}/{len(config.datasets)}] {dataset} → {sub}")
        dataset_start = time.perf_counter()
        RECIPE.run(sub, config.for_dataset(dataset), overwrite=resume)
        timings[dataset] = time.perf_counter() - dataset_start
        for line in headline_lines(sub / "qa_results.csv"):
            top.log(f"    {line}")
    with top.stage("report"):
        collect_results(out, config.datasets)
        timings["total"] = time.perf_counter() - start
        report = build_bio_comparison_report(out, config.datasets, timings=timings, png=config.png)
    for line in headline_lines(out / "qa_results.csv", comparison=True, datasets=config.datasets):
        top.log(line)
    top.log(f"done in {time.perf_counter() - start:.0f} s. Report: {report}")
    return top


def run_bio(
    out: Path | None = None,
    config: Annotated[BioExperimentConfig, tyro.conf.arg(name="")] = BioExperimentConfig(),  # noqa: B008
    overwrite: bool = False,
    resume: bool = False,
    threads: int | None = None,
) -> int:
    """Part 3.1: BIO-pretrain one model per dataset, check memorisation, QA-finetune, evaluate on held-out people,
    P-/Q-probe, and compare the datasets in one report.

    Args:
        out: run directory (default: runs/bio-<timestamp>); never overwritten without --overwrite.
        config: datasets, people, model, pretraining, fine-tuning, evaluation and probe settings.
        overwrite: replace an existing run directory.
        resume: continue an interrupted run in --out (same options): finished datasets are kept, the others rerun.
        threads: torch CPU threads (default: $OMP_NUM_THREADS, else every core); on a busy machine try 1.
    """
    from physlm.threads import set_torch_threads

    set_torch_threads(threads)
    if out is None:
        if resume:
            raise ValueError("--resume needs the --out directory of the run to continue")
        out = Path("runs") / f"bio-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    top = run_bio_experiment(out, config, overwrite=overwrite, resume=resume)
    print(f"\nreport: {(top.path / 'report.html').resolve()}")
    return 0
