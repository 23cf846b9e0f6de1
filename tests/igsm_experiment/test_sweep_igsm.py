"""`physlm sweep igsm-shape`: shapes at equal parameter counts, commands that parse back, a resumable tiny sweep."""

from __future__ import annotations

import csv
import shlex

import pytest

from physlm.experiments.run_igsm import IGSMExperimentConfig
from physlm.experiments.sweep_igsm import (
    IGSMShapeSweepConfig,
    cli_args,
    collect,
    get_option,
    non_embedding_params,
    plan_points,
    resolved_model,
    run_sweep,
    sweep_figure,
    total_params,
    with_options,
)


def _tiny_sweep() -> IGSMShapeSweepConfig:
    """Two shapes of ~50k non-embedding parameters (1x64 and 4x32), 3 steps, one in-distribution eval problem per
    cell (an untrained model writes to its length budget: OOD cells would double the cost)."""
    from physlm.analysis.igsm_eval import IGSMEvalConfig
    from physlm.probing.fit import FitConfig
    from physlm.probing.igsm_vprobe import IGSMProbeConfig

    experiment = with_options(
        IGSMExperimentConfig(),
        preset="micro", n_ctx=320, steps=3, batch_size=2, warmup_steps=0, device="cpu", png=False,
        eval=IGSMEvalConfig(n_problems=1, ood=False, reask=False, n_examples=1, length_factor=1.0),
        probe=IGSMProbeConfig(n_train=4, n_test=3, draws_per_problem=2, n_boot=20, targets=("nece",),
                              layerwise=("nece",), cells=("in_dist",), curves=False, embedding_update="suffix",
                              fit=FitConfig(max_epochs=1, batch_size=8)),
    )
    experiment = experiment.replace(model=experiment.model.replace(preset="gpt_rot-tiny"))
    return IGSMShapeSweepConfig(depths=(1, 4), ref_n_layers=4, ref_d_model=32, experiment=experiment)


def test_default_shapes_have_matching_parameter_counts():
    points = plan_points(IGSMShapeSweepConfig())
    assert [p.n_layers for p in points] == [2, 4, 8, 12]
    assert [p.name for p in points] == [f"{p.n_layers}x{p.d_model}" for p in points]
    widths = [p.d_model for p in points]
    assert widths == sorted(widths, reverse=True)  # deeper is narrower
    target = points[2].params  # the reference 8x128
    assert points[2].d_model == 128
    for p in points:
        mc = resolved_model(p.experiment)
        assert (mc.n_layers, mc.d_model) == (p.n_layers, p.d_model)
        assert mc.d_model % mc.n_heads == 0 and mc.head_dim % 2 == 0  # rotary needs an even head size
        assert non_embedding_params(mc) == p.params
        assert abs(p.params - target) <= 0.1 * target
        assert get_option(p.experiment, "preset") == "micro"


def test_parameter_counts_match_the_built_model(igsm_vocab):
    from physlm.training import ModelConfig, build_model

    for positional in ("rotary", "standard"):
        mc = ModelConfig(n_layers=3, d_model=48, n_heads=4, d_mlp=80, n_ctx=64, d_vocab=igsm_vocab,
                         positional=positional)
        named = dict(build_model(mc).named_parameters())
        embedding = sum(p.numel() for n, p in named.items() if n.split(".")[0] in ("embed", "unembed", "pos_embed"))
        assert total_params(mc) == sum(p.numel() for p in named.values())
        assert non_embedding_params(mc) == total_params(mc) - embedding


def test_shapes_that_miss_the_target_and_preset_shapes_are_refused():
    with pytest.raises(ValueError, match="within"):
        plan_points(IGSMShapeSweepConfig(depths=(1, 3), ref_n_layers=4, ref_d_model=32, max_param_mismatch=1e-4,
                                         experiment=_tiny_sweep().experiment))
    with pytest.raises(ValueError, match="n_layers"):
        IGSMShapeSweepConfig(experiment=with_options(IGSMExperimentConfig(), n_layers=4))
    with pytest.raises(ValueError, match="repeat"):
        IGSMShapeSweepConfig(depths=(2, 2))


def test_cli_args_parse_back_to_the_config():
    import tyro

    config = _tiny_sweep()
    for point in plan_points(config):
        args = cli_args(point.experiment)
        assert tyro.cli(IGSMExperimentConfig, args=args) == point.experiment
        assert "--no-png" in args and "--probe.targets" in args
    assert cli_args(IGSMExperimentConfig()) == []
    seeded = plan_points(config.replace(seeds=(0, 3)))
    assert [p.name for p in seeded] == ["1x64-seed0", "1x64-seed3", "4x32-seed0", "4x32-seed3"]
    assert [get_option(p.experiment, "seed") for p in seeded] == [0, 3, 0, 3]


def test_figure_has_accuracy_and_probe_panels():
    rows = [dict(shape=f"{n}x{d}", n_layers=n, d_model=d, seed=0, params=1000, nece_metric="balanced_accuracy",
                 accuracy=a, accuracy_ci_low=a - 0.1, accuracy_ci_high=a + 0.1, ood_accuracy=None,
                 nece=0.8, nece_ci_low=0.7, nece_ci_high=0.9, nece_random_init=0.6,
                 nece_random_init_ci_low=0.5, nece_random_init_ci_high=0.7)
            for n, d, a in ((2, 64, 0.2), (8, 32, 0.5))]
    fig = sweep_figure(rows)
    assert [t.name for t in fig.data] == ["in distribution (seed 0)", "trained (seed 0)",
                                          "random-init control (seed 0)"]
    assert list(fig.data[0].x) == [2, 8] and list(fig.data[0].y) == [0.2, 0.5]


def test_collect_reads_eval_probe_and_speed_of_a_run(tmp_path):
    import json

    from physlm.results import write_results
    from physlm.rundir import RunDir
    from physlm.training.train_config import TrainConfig

    exp = _tiny_sweep().experiment
    point = plan_points(_tiny_sweep())[1]
    run = RunDir.create(tmp_path / "sweep" / "4x32", {"experiment": point.experiment,
                                                    "model": resolved_model(point.experiment),
                                                    "train": TrainConfig(steps=10, batch_size=2, seq_len=100),
                                                    "task": {"name": "igsm", "options": {"preset": "micro"}}})
    (run.path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
        {"step": 1, "tokens_per_s": 100.0}, {"step": 2, "eval_loss": 1.0}, {"step": 3, "tokens_per_s": 400.0},
        {"step": 4, "tokens_per_s": 200.0})))
    cells = [dict(cell="op<=4", ood=False, reask=False, correct=3, n=4, accuracy=0.75, ci_low=0.3, ci_high=0.95),
             dict(cell="op=4", ood=False, reask=False, correct=0, n=4, accuracy=0.0, ci_low=0.0, ci_high=0.5),
             dict(cell="op=6", ood=True, reask=False, correct=1, n=4, accuracy=0.25, ci_low=0.0, ci_high=0.7),
             dict(cell="op=7", ood=True, reask=False, correct=2, n=4, accuracy=0.5, ci_low=0.1, ci_high=0.9),
             dict(cell="op=6 reask", ood=True, reask=True, correct=4, n=4, accuracy=1.0, ci_low=0.5, ci_high=1.0)]
    (run.path / "igsm_eval.json").write_text(json.dumps({"cells": cells}))
    rows = [dict(target=t, level=0, layer=layer, features=f, metric=m, value=v, ci_low=v - 0.1, ci_high=v + 0.1,
                 cell="op<=4", population="all_param", n_examples=40)
            for t in ("nece", "dep") for layer in (0, 3) for f, v in (("trained", 0.5 + 0.1 * layer),
                                                                      ("random_init", 0.55))
            for m in ("accuracy", "balanced_accuracy")]
    # rows of other cells, populations and distance bins must not be read as the headline
    top = next(r for r in rows if (r["target"], r["layer"], r["features"], r["metric"])
               == ("nece", 3, "trained", "balanced_accuracy"))
    others = [dict(top, cell="op=6", value=0.1), dict(top, population="G_d", value=0.2),
              dict(top, level=2, population="necessary", value=0.3)]
    write_results(run.path / "probe_results.csv", rows + others)
    (row,) = collect(tmp_path / "sweep")
    assert (row["shape"], row["status"], row["n_layers"], row["d_model"]) == ("4x32", "incomplete", 4, 32)
    assert row["seconds_per_step"] == pytest.approx(200 / 200.0)  # 2 x 100 tokens at the median 200 tokens/s
    assert (row["eval_cell"], row["n_eval"], row["accuracy"]) == ("op<=4", 4, 0.75)
    assert row["ood_accuracy"] == pytest.approx(3 / 8)  # the two OOD cells pooled, reask left out
    assert row["ood_ci_low"] < 3 / 8 < row["ood_ci_high"]
    assert (row["nece_layer"], row["nece"], row["nece_random_init"]) == (3, pytest.approx(0.8), 0.55)
    assert row["params"] == point.params and exp.preset == "micro"


@pytest.fixture(scope="module")
def tiny_sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "shape"
    status = run_sweep(out, _tiny_sweep(), workers=2, png=False)
    return out, status


def test_tiny_sweep_writes_runs_commands_table_and_figure(tiny_sweep_dir):
    out, status = tiny_sweep_dir
    assert status == {"1x64": "done", "4x32": "done"}
    lines = (out / "commands.txt").read_text().splitlines()
    assert len(lines) == 2
    for line, name in zip(lines, ("1x64", "4x32")):
        argv = shlex.split(line)
        assert argv[:3] == ["physlm", "run", "igsm"]
        for option in ("--preset", "--model.preset", "--steps", "--batch-size", "--seed"):  # stated explicitly
            assert option in argv
        assert argv[argv.index("--out") + 1] == str(out / name)
        assert argv[argv.index("--model.n-layers") + 1] == name.split("x")[0]
        assert argv[argv.index("--model.d-model") + 1] == name.split("x")[1]
        assert (out / name / "COMPLETE.report").is_file()
    with (out / "sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["shape"], r["n_layers"], r["d_model"], r["status"]) for r in rows] == [
        ("1x64", "1", "64", "complete"), ("4x32", "4", "32", "complete")]
    for r in rows:
        assert abs(int(r["params"]) - int(rows[1]["params"])) <= 0.1 * int(rows[1]["params"])
        assert r["steps"] == "3" and float(r["seconds_per_step"]) > 0
        assert r["eval_cell"] == "op<=4" and r["n_eval"] == "1" and r["ood_accuracy"] == ""
        assert float(r["accuracy_ci_low"]) <= float(r["accuracy"]) <= float(r["accuracy_ci_high"])
        assert int(r["nece_layer"]) == int(r["n_layers"]) - 1
        for key in ("nece", "nece_random_init"):
            assert float(r[f"{key}_ci_low"]) <= float(r[key]) <= float(r[f"{key}_ci_high"])
    html = (out / "sweep.html").read_text()
    assert "Depth versus width" in html and "plotly" in html
    assert (out / "COMPLETE.sweep").is_file() and not (out / "FAILED").exists()


def test_rerun_skips_complete_points_and_redoes_unfinished_ones(tiny_sweep_dir):
    out, _ = tiny_sweep_dir
    config = _tiny_sweep()
    kept = (out / "4x32" / "COMPLETE.report").stat().st_mtime_ns
    assert run_sweep(out, config, png=False) == {"1x64": "skipped", "4x32": "skipped"}
    (out / "1x64" / "COMPLETE.report").unlink()  # as if that run had stopped before its report
    assert run_sweep(out, config, png=False) == {"1x64": "done", "4x32": "skipped"}
    assert (out / "4x32" / "COMPLETE.report").stat().st_mtime_ns == kept
    assert (out / "1x64" / "COMPLETE.report").is_file()
    # a complete point made with other settings is refused before anything runs
    with pytest.raises(ValueError, match="other settings"):
        run_sweep(out, config.replace(experiment=with_options(config.experiment, lr=1e-3)), png=False)


def test_collect_only_rebuilds_the_table(tiny_sweep_dir):
    out, _ = tiny_sweep_dir
    (out / "sweep.csv").unlink()
    (out / "sweep.html").unlink()
    assert run_sweep(out, _tiny_sweep(), collect_only=True, png=False) == {}
    with (out / "sweep.csv").open() as handle:
        assert [r["shape"] for r in csv.DictReader(handle)] == ["1x64", "4x32"]
    assert (out / "sweep.html").is_file()


def test_plan_only_writes_commands_and_runs_nothing(tmp_path):
    status = run_sweep(tmp_path / "plan", _tiny_sweep(), plan_only=True)
    assert status == {"1x64": "planned", "4x32": "planned"}
    assert len((tmp_path / "plan" / "commands.txt").read_text().splitlines()) == 2
    assert not (tmp_path / "plan" / "1x64").exists()


def test_cli_lists_the_sweep(capsys):
    from physlm.experiments.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["sweep", "igsm-shape", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--depths", "--workers", "--collect-only", "--experiment.preset", "--steps"):
        assert option in out
