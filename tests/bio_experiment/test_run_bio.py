"""`physlm run bio` end to end at smoke size (two datasets, 40 people, a 1-layer d_model 32 model, 20 steps), its
resume, its command line and its refusals of bad input."""

from __future__ import annotations

import csv
import json
import time
from html import unescape

import pytest

from physlm.analysis.bio_eval import QA_COLUMNS
from physlm.analysis.report_html import find_chromium
from physlm.experiments.recipe import ModelOptions
from physlm.experiments.run_bio import (
    STAGES,
    BioEvalConfig,
    BioExperimentConfig,
    BioTrainOptions,
    bio_task,
    model_config,
    run_bio_experiment,
    train_config,
)
from physlm.probing.bio_probe import BioFitConfig, BioProbeConfig
from physlm.results import CSV_COLUMNS
from physlm.training.bio_finetune import QAFinetuneConfig

DATASETS = ("single", "multi5+permute")
# options of the command-line tests: as small as the smoke config, so a test that did start would stay short
SMOKE_ARGS = ["--n-people", "40", "--model.preset", "gpt_rot-tiny", "--model.n-layers", "1", "--model.d-model", "32",
              "--n-ctx", "128", "--seq-len", "128", "--steps", "20", "--batch-size", "4", "--device", "cpu",
              "--no-png", "--threads", "1"]


def smoke_config(**changes: object) -> BioExperimentConfig:
    """Smoke size: 40 people, a 1-layer d_model 32 model, 20 pretraining steps, 5 fine-tuning steps per protocol,
    3 steps per probe."""
    config = BioExperimentConfig(
        datasets=DATASETS, n_people=40,
        model=ModelOptions(preset="gpt_rot-tiny", n_layers=1, d_model=32), n_ctx=128, seq_len=128,
        train=BioTrainOptions(steps=20, batch_size=4, warmup_steps=2, device="cpu"),
        finetune=QAFinetuneConfig(steps=5, batch_size=8, embedding_rank=8, log_every=2), protocols=("lora", "full"),
        eval=BioEvalConfig(memorisation_entries=40, beam_people=4, n_boot=50),
        probe=BioProbeConfig(p=BioFitConfig(rank=2, batch_size=8, steps=3), q=BioFitConfig(rank=4, batch_size=8,
                                                                                           steps=3), n_boot=20),
        png=False,  # PNG export (a Chromium session per report) is tested once, on the finished run
    )
    return config.replace(**changes)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bio") / "run"
    start = time.perf_counter()
    top = run_bio_experiment(out, smoke_config())
    print(f"smoke run of physlm run bio: {time.perf_counter() - start:.1f} s")
    return top.path


def _csv(path):
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return tuple(reader.fieldnames), list(reader)


def test_smoke_run_writes_every_artifact_with_stage_markers(smoke_run):
    out = smoke_run
    assert (out / "COMPLETE.report").exists() and not (out / "FAILED").exists()
    for name in ("config.json", "log.txt", "qa_results.csv", "probe_results.csv", "report.html"):
        assert (out / name).is_file(), name
    for dataset in DATASETS:
        sub = out / dataset
        for stage in STAGES:
            assert (sub / f"COMPLETE.{stage}").exists(), (dataset, stage)
        assert not (sub / "FAILED").exists()
        for name in ("config.json", "log.txt", "metrics.jsonl", "qa_results.csv", "probe_results.csv",
                     "report.html", "checkpoints/latest"):
            assert (sub / name).is_file(), (dataset, name)
        for protocol in ("lora", "full"):
            latest = (sub / "finetuned" / protocol / "latest").read_text().strip()
            assert (sub / "finetuned" / protocol / latest / "model.safetensors").is_file()


def test_reports_rebuild_with_png_figures(smoke_run, tmp_path):
    import shutil

    from physlm.analysis.report_bio import build_bio_comparison_report, build_bio_report

    out = tmp_path / "run"
    shutil.copytree(smoke_run, out)
    assert build_bio_comparison_report(out, png=True) == out / "report.html"
    build_bio_report(out / "single", png=True)
    if find_chromium() is None:
        assert (out / "figures" / "PNG_NOT_WRITTEN.txt").is_file()
        return
    assert {p.name for p in (out / "figures").glob("*.png")} == {
        "qa_accuracy.png", "p_probe_single.png", "p_probe_multi5_permute.png", "q_probe_vs_qa.png", "loss.png"}
    assert {p.name for p in (out / "single" / "figures").glob("*.png")} == {
        "loss.png", "qa_accuracy.png", "p_probe.png", "q_probe_vs_qa.png"}


def test_csv_columns_are_exactly_the_shared_ones(smoke_run):
    columns, rows = _csv(smoke_run / "qa_results.csv")
    assert columns == QA_COLUMNS
    assert {r["dataset"] for r in rows} == set(DATASETS)
    assert {r["protocol"] for r in rows} == {"pretrain", "pretrain+lora", "pretrain+full"}
    assert {r["group"] for r in rows} == {"all_people", "test_people", "train_people"}
    assert {r["metric"] for r in rows} == {"exact_greedy", "exact_beam4", "first_token", "bio_first_token"}
    for r in rows:
        assert float(r["ci_low"]) <= float(r["value"]) <= float(r["ci_high"])
    for dataset in DATASETS:  # the top-level file is the sub-runs' files concatenated
        sub_columns, sub_rows = _csv(smoke_run / dataset / "qa_results.csv")
        assert sub_columns == QA_COLUMNS
        assert sub_rows == [r for r in rows if r["dataset"] == dataset]

    columns, rows = _csv(smoke_run / "probe_results.csv")
    assert columns[: len(CSV_COLUMNS) + 1] == (*CSV_COLUMNS, "dataset")
    assert {"probe", "position"} <= set(columns)
    assert {r["dataset"] for r in rows} == set(DATASETS)
    assert {r["probe"] for r in rows} == {"P", "Q"}
    assert {r["features"] for r in rows} == {"trained", "random_init", "majority"}
    sub_columns, sub_rows = _csv(smoke_run / "single" / "probe_results.csv")
    assert "dataset" not in sub_columns
    assert len(sub_rows) == sum(r["dataset"] == "single" for r in rows)


def test_reports_mention_both_datasets_and_the_paper(smoke_run):
    html = unescape((smoke_run / "report.html").read_text())
    for text in ("What this run shows", "Results", "QA exact match on held-out people", "P-probes", "Q-probes",
                 "BIO pretraining", "Configs and provenance", "(paper 9.7% vs 96.6%)", "30 points", "> 99%"):
        assert text in html, text
    for dataset in DATASETS:
        assert f"P-probe, {dataset}" in html
        assert f"physlm — bio experiment: {dataset}" in (smoke_run / dataset / "report.html").read_text()
    log = (smoke_run / "log.txt").read_text()
    assert "QA exact match on held-out people" in log and "BIO memorisation" in log


def test_sub_runs_record_their_dataset_and_load_back(smoke_run):
    from physlm.training.load import load_model

    for dataset in DATASETS:
        sub = smoke_run / dataset
        configs = json.loads((sub / "config.json").read_text())["configs"]
        assert configs["experiment"]["datasets"] == [dataset]
        assert configs["task"]["options"] == {"n_people": 40, "augmentation": dataset, "seed": 0}
        tuned = load_model(sub / "finetuned" / "lora")
        assert tuned.meta["finetune"]["protocol"] == "pretrain+lora"
        assert tuned.meta["finetune"]["base_step"] == 20 and tuned.step == 5
        assert tuned.model_config == load_model(sub).model_config


def test_resume_keeps_finished_datasets_and_reruns_the_others(smoke_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(smoke_run, out)  # the other tests keep reading the original
    config = smoke_config(png=True)
    with pytest.raises(ValueError, match="these differ: png"):
        run_bio_experiment(out, config, resume=True)
    config = smoke_config()
    kept = (out / "multi5+permute" / "checkpoints" / "latest").stat().st_mtime_ns
    (out / "single" / "COMPLETE.report").unlink()  # as if the run had stopped inside single's report
    run_bio_experiment(out, config, resume=True)
    assert (out / "single" / "COMPLETE.report").exists() and (out / "COMPLETE.report").exists()
    assert (out / "multi5+permute" / "checkpoints" / "latest").stat().st_mtime_ns == kept
    assert "multi5+permute: finished earlier, kept" in (out / "log.txt").read_text()
    # the rerun of single reproduces the first run exactly (seeded world, training, fine-tuning, probes)
    for name in ("qa_results.csv", "probe_results.csv", "checkpoints/step_00000020/model.safetensors",
                 "finetuned/full/step_00000005/model.safetensors"):
        assert (out / "single" / name).read_bytes() == (smoke_run / "single" / name).read_bytes(), name
    with pytest.raises(ValueError, match="exclude each other"):
        run_bio_experiment(out, config, overwrite=True, resume=True)


def test_the_same_people_and_split_for_every_dataset():
    config = smoke_config()
    worlds = [bio_task(config.for_dataset(d)).world for d in DATASETS]
    assert worlds[0].people == worlds[1].people
    assert (worlds[0].train_people, worlds[0].test_people) == (worlds[1].train_people, worlds[1].test_people)
    assert worlds[0].n_entries(0) == 1 and worlds[1].n_entries(0) == 5


def test_skipped_stages_leave_a_report(tmp_path):
    config = smoke_config(datasets=("single",), skip=("memorisation", "qa", "probe"))
    out = run_bio_experiment(tmp_path / "run", config).path
    assert {p.name for p in (out / "single").glob("COMPLETE.*")} == {"COMPLETE.train", "COMPLETE.report"}
    columns, rows = _csv(out / "qa_results.csv")
    assert columns == QA_COLUMNS and rows == []
    assert "nothing to read yet" in (out / "report.html").read_text()


def test_configs_follow_the_experiment():
    config = smoke_config()
    tc = train_config(config)
    assert (tc.steps, tc.seq_len, tc.warmup_steps, tc.min_lr_ratio, tc.schedule) == (20, 128, 2, 0.1, "cosine")
    mc = model_config(config, d_vocab=100)
    assert (mc.n_layers, mc.d_model, mc.d_mlp, mc.n_ctx, mc.positional) == (1, 32, 128, 128, "rotary")
    assert BioExperimentConfig.from_json(config.to_json()) == config
    assert config.finetune_protocols == ("lora", "full")
    assert BioExperimentConfig(protocols=None).finetune_protocols == ("lora",)
    default = BioExperimentConfig()
    assert (default.train.steps, default.train.batch_size, default.train.lr, default.train.warmup_steps) == (
        800, 16, 2e-3, 80)
    assert (default.n_ctx, default.seq_len, default.model.preset, default.n_people) == (256, 256, "gpt_rot-small", 250)
    for bad in (dict(datasets=()), dict(datasets=("single", "single")), dict(seq_len=512),
                dict(protocols=("lora", "lora")), dict(n_people=1)):
        with pytest.raises(ValueError):
            BioExperimentConfig(**bad)


def test_cli_help_lists_the_options(capsys):
    from physlm.experiments.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["run", "bio", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--datasets", "--n-people", "--world-seed", "--model.preset", "--model.n-layers",
                   "--model.d-model", "--steps", "--lr", "--finetune.steps", "--protocols", "--eval.beam-people",
                   "--probe.targets", "--skip", "--png", "--overwrite", "--resume", "--threads"):
        assert option in out, option


def test_unknown_dataset_fails_before_training_with_one_line(tmp_path, capsys):
    from physlm.experiments.cli import console_main

    out = tmp_path / "run"
    code = console_main(["run", "bio", "--out", str(out), "--datasets", "single", "multi7+shuffle", *SMOKE_ARGS])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("physlm: error: --datasets: unknown augmentation 'multi7+shuffle'")
    assert len(err) == 2 and "PHYSLM_DEBUG" in err[1]
    assert not out.exists()


def test_existing_out_dir_without_overwrite_fails_clearly(tmp_path, capsys):
    from physlm.experiments.cli import console_main

    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("earlier work\n")
    code = console_main(["run", "bio", "--out", str(out), *SMOKE_ARGS])
    assert code == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
