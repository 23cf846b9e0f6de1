"""`physlm probe igsm --run RUN` on a run trained by `physlm train --task igsm`, and `physlm data igsm-info`."""

from __future__ import annotations

import json

import pytest

from physlm.experiments.cli import main
from physlm.results import read_results
from physlm.rundir import RunDir

PROBE = ["--n-train", "3", "--n-test", "2", "--draws-per-problem", "2", "--n-boot", "20", "--layerwise", "nece",
         "--fit.max-epochs", "1", "--fit.batch-size", "8", "--first-wrong", "--first-wrong-problems", "2",
         "--threads", "1"]


@pytest.mark.parametrize("mode", ["suffix", "all"])
def test_probe_igsm_writes_rows_figures_and_the_info_record(tmp_path, capsys, mode):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--task", "igsm", "--task-option", "preset=tiny", "max_tokens=254",
                 "--preset", "gpt_rot-tiny", "--model-option", "d_model=32", "n_ctx=320", "--steps", "2",
                 "--batch-size", "2", "--seq-len", "256", "--drop-long-documents", "--eval-batches", "1",
                 "--device", "cpu"]) == 0
    assert main(["probe", "igsm", "--run", str(out), "--embedding-update", mode, *PROBE]) == 0
    run = RunDir.open(out)
    assert run.is_complete("probe") and not (out / "FAILED").exists()
    rows = read_results(out / "probe_results.csv")
    assert {r["cell"] for r in rows} >= {"op<=4", "op=4", "op=6", "op=6 reask"}
    assert {r["features"] for r in rows} == {"trained", "random_init", "majority"}
    assert {"define"} <= {r["population"] for r in rows}
    info = json.loads((out / "probe_igsm.json").read_text())
    assert info["preset"] == "tiny" and set(info["curves"]) == {"nece", "dep", "known", "value", "can_next",
                                                                 "nece_next"}
    assert info["first_wrong"]["problems"] == 2 and info["config"]["embedding_update"] == mode
    for target in ("nece", "dep", "can_next"):
        assert (out / f"probe_{target}.json").is_file()
    assert run.config("probe")["embedding_update"] == mode
    printed = capsys.readouterr().out
    assert "nece" in printed and "results:" in printed


def test_igsm_info_on_micro_and_tiny(tmp_path, capsys):
    from physlm.tasks.igsm.cli import igsm_info

    micro = igsm_info("micro", n=60, seed=1)
    tiny = igsm_info("tiny", n=60, seed=1, json_out=tmp_path / "tiny.json")
    out = capsys.readouterr().out
    assert "iGSM preset micro" in out and "iGSM preset tiny" in out and "op histogram" in out
    assert json.loads((tmp_path / "tiny.json").read_text())["n"] == 60
    for stats in (micro, tiny):
        p = stats["params"]
        assert p["necessary"]["mean"] + p["unnecessary"]["mean"] == pytest.approx(p["G_d"]["mean"])
        assert p["G_d"]["mean"] + p["isolated_slots"]["mean"] + p["unused_abstract"]["mean"] == pytest.approx(
            p["all_param"]["mean"])
        assert sum(stats["ops"].values()) == 60 and max(stats["ops"]) <= 4
        assert stats["tokens"]["document"]["max"] >= stats["tokens"]["problem"]["max"]
        for task, populations in stats["labels"].items():
            for e in populations.values():
                assert 0.5 <= e["majority_baseline"] <= 1.0
                if task != "value":
                    assert e["majority_baseline"] == pytest.approx(max(e["positive_rate"], 1 - e["positive_rate"]))
        # isolated slots are never necessary: G_d has a higher nece rate than all_param
        assert stats["labels"]["nece"]["G_d"]["positive_rate"] > stats["labels"]["nece"]["all_param"]["positive_rate"]
    assert micro["params"]["all_param"]["mean"] < tiny["params"]["all_param"]["mean"]  # the compact world
    assert main(["data", "igsm-info", "micro", "--n", "5"]) == 0


def test_igsm_info_base_rates_match_the_spec_for_med():
    """Spec §3.1: positive rates for med over all_param, per problem: nece 25%, dep 16%, nece_next 5%."""
    from physlm.tasks.igsm import preset
    from physlm.tasks.igsm.stats import igsm_stats

    labels = igsm_stats(preset("med"), n=60, seed=0)["labels"]
    assert labels["nece"]["all_param"]["positive_rate"] == pytest.approx(0.25, abs=0.05)
    assert labels["dep"]["all_param"]["positive_rate"] == pytest.approx(0.16, abs=0.04)
    assert labels["nece_next"]["all_param"]["positive_rate"] == pytest.approx(0.05, abs=0.02)
