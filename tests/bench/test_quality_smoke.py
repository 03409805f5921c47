"""`em3 bench quality --quick` runs search → final runs → summary end to end, writes the documented JSON and plot,
and a second invocation resumes from the finished runs instead of training again."""

import json
import math
import subprocess
import sys
from pathlib import Path

from em3.bench.quality import CONFIGS

ROOT = Path(__file__).resolve().parents[2]


def run_quick(
    tmp_path: Path, *extra: str, out: str = "quality.json", check: bool = True
) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "em3",
        "bench",
        "quality",
        "--quick",
        "--workers",
        "1",
        "--work-dir",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path / out),
        *extra,
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 or not check, run.stderr[-4000:]
    return run


def test_quick_quality_benchmark_writes_statistics_targets_and_a_plot_and_resumes(tmp_path):
    first = run_quick(tmp_path)
    result = json.loads((tmp_path / "quality.json").read_text())
    assert result["command"].startswith("em3 bench quality --quick")
    din = result["results"]["din"]
    assert set(din) == set(CONFIGS)
    references = result["data"]["behaviour_similarity_references"]  # what behaviour similarity is read against
    assert set(references) == {"frozen", "random"} and all(0 <= value <= 1 for value in references.values())
    assert f"random neighbours {references['random']:.4f} (chance)" in first.stdout
    for name, entry in din.items():
        assert sorted(entry["seeds"]) == ["0", "1"]
        assert all(0 < seed["auc"] < 1 and seed["logloss"] > 0 for seed in entry["seeds"].values())
        assert entry["mean"]["auc"] == sum(s["auc"] for s in entry["seeds"].values()) / 2
        if name != "two_stage":
            boot = entry["auc_bootstrap"]
            assert boot["low"] <= boot["diff"] <= boot["high"]
            assert math.isclose(boot["diff"], entry["mean"]["auc"] - din["two_stage"]["mean"]["auc"], abs_tol=1e-9)
            for part, slice_boot in entry["auc_by_modality_bootstrap"].items():  # the same difference, per slice
                expected = entry["auc_by_modality"][part] - din["two_stage"]["auc_by_modality"][part]
                assert math.isclose(slice_boot["diff"], expected, abs_tol=1e-9)
            for metric, sim_boot in entry["similarity_bootstrap"].items():  # over seeds and the scored items
                if sim_boot is None:  # no content embedding: no behaviour similarity to compare
                    assert metric == "behaviour_similarity" and entry["mean"][metric] is None
                    continue
                expected = entry["mean"][metric] - din["two_stage"]["mean"][metric]
                assert math.isclose(sim_boot["diff"], expected, abs_tol=1e-9)
                assert sim_boot["low"] <= sim_boot["diff"] <= sim_boot["high"]
    by_modality = result["data"]["test_rows_by_modality"]
    assert sum(by_modality.values()) == result["data"]["test_rows"] and by_modality["image+text"] > 0
    assert set(din["em3"]["auc_by_modality"]) == set(by_modality)
    assert {t["name"].split(":")[0] for t in result["targets"]} >= {"FQ-Former earns its place", "CIC earns its place"}
    assert all(isinstance(t["met"], bool) for t in result["targets"])
    trials = result["search"]["trials"]
    assert sorted(t["config"] for t in trials) == sorted(CONFIGS), "every configuration gets the same search"
    assert set(result["search"]["chosen"]) == {f"din/{name}" for name in CONFIGS}
    for run in [*trials, *result["runs"]]:  # every run says how it went
        assert 0 <= run["best_epoch"] < len(run["valid_curve"])
        assert run["valid_curve"][run["best_epoch"]] == max(run["valid_curve"])
        assert 0 < run["valid_auc"] < 1 and run["stopped_by"] and run["train_seconds"] > 0
    assert result["protocol"]["runs"] == len(trials) + len(result["runs"]) == len(CONFIGS) * 3  # 1 lr + 2 seeds
    runs = tmp_path / "work" / "runs"
    for name in CONFIGS:  # seed 0's final run is the chosen search trial's model, scored, not trained twice
        final = {
            seed: json.loads((runs / "final" / "din" / name / f"seed{seed}" / "quality.json").read_text())
            for seed in (0, 1)
        }
        assert final[0]["trained_in"] == f"runs/search/din/{name}/trial0" and "trained_in" not in final[1]
        assert not (runs / "final" / "din" / name / "seed0" / "model").exists()
        assert (runs / "final" / "din" / name / "seed1" / "model").is_dir()
        trial = next(t for t in trials if t["config"] == name)
        assert final[0]["valid_curve"] == trial["valid_curve"]
    assert (tmp_path / "quality_auc.png").read_bytes()[:4] == b"\x89PNG"
    assert "test AUC by the modalities of the row's item" in first.stdout
    assert "| em3_no_cic |" in first.stdout and "epoch 0: valid auc" in first.stdout
    boot = din["em3"]["auc_bootstrap"]  # the absolute difference and both ends are printed, not only in the JSON
    assert f"{boot['diff']:+.4f} [{boot['low']:+.4f}, {boot['high']:+.4f}]" in first.stdout
    assert "quote the *_bootstrap intervals" in result["intervals"]
    assert (result["machine"]["torch_threads"], result["machine"]["workers"]) == (1, 1), "what each run had"

    scores = runs / "final" / "din" / "em3" / "seed1" / "test_per_item.npz"
    scores.unlink()  # as a run scored before per-item scores were kept: scored again, not trained again
    second = run_quick(tmp_path)  # every run finished before: nothing trains again, the same summary comes out
    assert "epoch 0: valid auc" not in second.stdout and scores.is_file()
    assert json.loads((tmp_path / "quality.json").read_text())["results"] == result["results"]

    third = run_quick(tmp_path, "--search-seeds", "2")  # seed 1's trials are the final runs of seed 1: reused
    assert "epoch 0: valid auc" not in third.stdout and "mean validation AUC, seeds 0, 1" in third.stdout
    searched = json.loads((tmp_path / "quality.json").read_text())["search"]
    assert searched["seeds"] == [0, 1] and len(searched["trials"]) == 2 * len(CONFIGS)
    for name in CONFIGS:
        trial = json.loads((runs / "search" / "din" / name / "trial0-seed1" / "quality.json").read_text())
        assert trial["trained_in"] == f"runs/final/din/{name}/seed1" and "test" not in trial

    earlier = tmp_path / "earlier.json"  # no search: the settings an earlier search chose, the same final runs
    earlier.write_text(json.dumps({"search": {"chosen": {**result["search"]["chosen"], "dcn/em3": {}}}}))
    fourth = run_quick(tmp_path, "--chosen-from", str(earlier))
    assert "epoch 0: valid auc" not in fourth.stdout and f"chosen by the search of {earlier}" in fourth.stdout
    reused = json.loads((tmp_path / "quality.json").read_text())
    assert reused["search"] == {"chosen_from": str(earlier), "chosen": result["search"]["chosen"], "trials": []}
    assert reused["results"] == result["results"] and reused["protocol"]["runs"] == 2 * len(CONFIGS)
    earlier.write_text(json.dumps({"search": {"chosen": {"din/em3": {"train.lr": 0.01}}}}))
    refused = run_quick(tmp_path, "--chosen-from", str(earlier), out="other.json", check=False)
    assert refused.returncode != 0 and "its search chose nothing for ['din/id_only'" in refused.stderr


def test_a_workers_data_key_keeps_the_source_its_tables_are_checked_against():
    """Workers load the data from ``data_key`` alone: loading refuses tables ingested from another source than the
    config's ``ingest.source``, so the key must carry it (it once fell back to the default and every run failed)."""
    from em3.bench.quality import benchmark_config, data_key, with_overrides
    from em3.config import load_config, parse_config

    base = benchmark_config(load_config(ROOT / "configs" / "bench_quality.yaml"), Path("work"))
    cfg = with_overrides(base, {"ingest.source": "elsewhere/hm", "seed": 3})
    loaded = parse_config(json.loads(data_key(cfg)), "test")
    assert (loaded.ingest, loaded.data) == (cfg.ingest, cfg.data)
    assert data_key(cfg) == data_key(with_overrides(cfg, {"seed": 4, "model.variant": "two_stage"}))
