"""The recipe skeleton: stages skipped, timed and marked; shared option groups; one thread policy; `physlm run cfg`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import pytest

from physlm.config import Config
from physlm.experiments.recipe import ModelOptions, Recipe, Stage, StageContext, TrainOptions, TrainPlan
from physlm.rundir import RunDir


@dataclasses.dataclass(frozen=True)
class _ToyConfig(Config):
    """A recipe config of the smallest run: cfg_tiny, gpt-tiny, two steps."""

    model: ModelOptions = ModelOptions(preset="gpt-tiny")
    train: TrainOptions = TrainOptions(steps=2, batch_size=2, device="cpu")
    skip: tuple[Literal["first", "second"], ...] = ()


def _toy_recipe(seen: dict) -> Recipe:
    from physlm.experiments import recipe
    from physlm.training.tasks_registry import build_task

    def plan(config: _ToyConfig) -> TrainPlan:
        task = build_task("cfg", grammar="cfg_tiny")
        return TrainPlan("cfg", {"grammar": "cfg_tiny"}, task, recipe.train_config(config.train, 32, 0.05),
                         recipe.model_config(config.model, task.token_table.d_vocab, 32, config.train.seed),
                         config.model.preset, intro=("toy intro",))

    def first(run: RunDir, context: StageContext) -> None:
        seen["first"] = (context.model, sorted(context.timings))
        (run.path / "first.txt").write_text("first\n")

    def second(run: RunDir, context: StageContext) -> None:
        seen["second"] = context.model is not None
        if seen.get("fail"):
            raise RuntimeError("second failed")

    def report(run: RunDir, context: StageContext) -> Path:
        seen["report"] = context.timings_so_far()
        return run.artifact("report.html")

    return Recipe("toy", plan, (Stage("first", first), Stage("second", second, needs_model=True)), report)


def test_stages_run_in_order_timed_and_marked(tmp_path):
    seen: dict = {}
    recipe = _toy_recipe(seen)
    assert recipe.stage_names == ("train", "first", "second", "report")
    run = recipe.run(tmp_path / "run", _ToyConfig())
    for stage in recipe.stage_names:
        assert run.is_complete(stage), stage
    # the model stays in memory only because a stage asked for it; each stage sees the times before it
    assert seen["first"][0] is not None and seen["first"][1] == ["train"] and seen["second"] is True
    assert list(seen["report"]) == ["train", "first", "second", "total"]
    configs = run.read_record()["configs"]
    assert configs["experiment"] == _ToyConfig().to_dict() and configs["model_preset"] == "gpt-tiny"
    assert configs["task"]["config"]["grammar"] == "cfg_tiny" and configs["train"]["steps"] == 2
    log = (run.path / "log.txt").read_text()
    assert "physlm run toy → " in log and "toy intro" in log
    assert "stage times (s): train " in log and ", report " in log and "Report: " in log


def test_skipped_stages_leave_no_marker_and_the_model_goes(tmp_path):
    seen: dict = {}
    run = _toy_recipe(seen).run(tmp_path / "run", _ToyConfig(skip=("second",)))
    assert run.is_complete("first") and not run.is_complete("second") and run.is_complete("report")
    assert seen["first"][0] is None and "second" not in seen
    assert list(seen["report"]) == ["train", "first", "total"]


def test_a_failing_stage_leaves_failed_and_stops_the_recipe(tmp_path):
    seen: dict = {"fail": True}
    with pytest.raises(RuntimeError, match="second failed"):
        _toy_recipe(seen).run(tmp_path / "run", _ToyConfig())
    run = RunDir.open(tmp_path / "run")
    assert run.is_complete("first") and not run.is_complete("second") and not run.is_complete("report")
    assert "stage 'second' failed: RuntimeError: second failed" in (run.path / "FAILED").read_text()


def test_only_skippable_stages_may_be_skipped(tmp_path):
    recipe = dataclasses.replace(_toy_recipe({}), stages=(Stage("first", lambda run, ctx: None, skippable=False),))
    with pytest.raises(ValueError, match=r"cannot skip \['first'\]"):
        recipe.run(tmp_path / "run", _ToyConfig(skip=("first",)))
    assert not (tmp_path / "run").exists()  # refused before the run directory was created


def test_both_recipes_nest_the_shared_option_groups():
    from physlm.experiments.run_cfg import CFGExperimentConfig
    from physlm.experiments.run_igsm import IGSMExperimentConfig

    for cls in (CFGExperimentConfig, IGSMExperimentConfig):
        config = cls()
        assert isinstance(config.train, TrainOptions) and isinstance(config.model, ModelOptions)
        assert config.model.preset == "gpt_rot-small"
        assert cls.from_json(config.to_json()) == config
    # each recipe keeps its own training defaults
    assert (CFGExperimentConfig().train.steps, CFGExperimentConfig().train.batch_size) == (1800, 32)
    assert (IGSMExperimentConfig().train.steps, IGSMExperimentConfig().train.weight_decay) == (1000, 0.05)
    with pytest.raises(ValueError, match="steps and batch_size"):
        TrainOptions(steps=0)


def test_run_commands_share_option_names():
    import tyro

    from physlm.experiments.run_cfg import CFGExperimentConfig
    from physlm.experiments.run_igsm import IGSMExperimentConfig

    cfg = tyro.cli(CFGExperimentConfig, args=["--grammar", "cfg_tiny", "--model.preset", "gpt-tiny",
                                              "--model.n-layers", "1", "--steps", "3", "--save-every", "2"])
    assert (cfg.grammar, cfg.model.preset, cfg.model.n_layers, cfg.train.steps, cfg.train.save_every) == (
        "cfg_tiny", "gpt-tiny", 1, 3, 2)
    igsm = tyro.cli(IGSMExperimentConfig, args=["--preset", "micro", "--model.preset", "gpt-tiny", "--lr", "0.01"])
    assert (igsm.preset, igsm.model.preset, igsm.train.lr) == ("micro", "gpt-tiny", 0.01)


def test_thread_policy(monkeypatch):
    import torch

    from physlm.threads import set_torch_threads

    before = torch.get_num_threads()
    try:
        assert set_torch_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert set_torch_threads() == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert set_torch_threads() >= 1
        assert set_torch_threads(0) == 1
    finally:
        torch.set_num_threads(before)


def test_run_cfg_command_at_smoke_size(tmp_path):
    from physlm.experiments.cli import main

    out = tmp_path / "run"
    assert main(["run", "cfg", "--out", str(out), "--grammar", "cfg_tiny", "--model.preset", "gpt-tiny",
                 "--n-ctx", "32", "--steps", "2", "--batch-size", "2", "--device", "cpu", "--threads", "1",
                 "--skip", "generation", "probe", "attention", "--no-png"]) == 0
    for stage in ("train", "report"):
        assert (out / f"COMPLETE.{stage}").is_file()
    assert not (out / "COMPLETE.probe").exists() and not (out / "figures").exists()
    experiment = json.loads((out / "config.json").read_text())["configs"]["experiment"]
    assert experiment["model"]["preset"] == "gpt-tiny" and experiment["train"]["steps"] == 2
    assert "physlm — CFG experiment (cfg_tiny)" in (out / "report.html").read_text()
