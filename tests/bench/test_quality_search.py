"""The benchmark's search: one grid for every configuration and backbone, the best validation AUC chosen."""

import argparse
import json
from pathlib import Path

import pytest

from em3.bench.quality import (
    STARTED,
    _finished,
    _resumable,
    best_overrides,
    final_jobs,
    job_config,
    search_jobs,
    twins,
    with_overrides,
)
from em3.bench.quality_plan import CONFIGS, Job, Settings, grid_entry
from em3.config import EM3_OBJECTIVE_WEIGHTS, load_config


def test_the_search_crosses_the_learning_rates_with_every_grid_setting_alike():
    settings = Settings(
        Path("w"),
        backbones=("din", "dcn"),
        configs=("two_stage", "em3"),
        lr_grid=(3e-4, 1e-3),
        grid=(("model.modality_dropout", (0.0, 0.3)),),
    )
    jobs = search_jobs(settings)
    assert len(jobs) == 2 * 2 * 4 and len({job.name for job in jobs}) == len(jobs)
    for backbone in ("din", "dcn"):
        for config in ("two_stage", "em3"):
            points = [job.overrides for job in jobs if (job.backbone, job.config) == (backbone, config)]
            assert sorted(tuple(p.values()) for p in points) == [(3e-4, 0.0), (3e-4, 0.3), (1e-3, 0.0), (1e-3, 0.3)]
    assert {job.seed for job in jobs} == {0}
    aucs = {
        job.name: 0.6 + (0.01 if job.overrides == {"train.lr": 1e-3, "model.modality_dropout": 0.3} else 0)
        for job in jobs
    }
    chosen = best_overrides(jobs, [{"valid_auc": aucs[job.name]} for job in jobs])
    assert chosen["dcn/em3"] == {"train.lr": 1e-3, "model.modality_dropout": 0.3}
    final = final_jobs(
        Settings(Path("w"), backbones=("din", "dcn"), configs=("two_stage", "em3"), seeds=(0, 1)), chosen
    )
    reused = {name: twin for name, twin in twins(jobs, final).items() if name.startswith("final/")}
    assert len(reused) == 4, "seed 0 of each final configuration reuses its chosen trial"
    assert all(twin.seed == 0 and twin.stage == "search" for twin in reused.values())


def test_the_search_chooses_by_the_mean_over_its_seeds_and_final_runs_reuse_every_searched_seed():
    """Seed 0 alone favours lr 3e-4 (by 0.001); seeds 0-2 together favour 1e-3 (by 0.005 on average)."""
    settings = Settings(
        Path("w"), backbones=("dcn",), configs=("em3",), seeds=(0, 1, 2), search_seeds=(0, 1, 2), lr_grid=(3e-4, 1e-3)
    )
    jobs = search_jobs(settings)
    assert len(jobs) == 2 * 3 and len({job.name for job in jobs}) == len(jobs)
    assert "search/dcn/em3/trial1" in {job.name for job in jobs}, "seed 0 keeps the names of earlier benchmarks"
    valid = {(3e-4, 0): 0.609, (1e-3, 0): 0.608, (3e-4, 1): 0.603, (1e-3, 1): 0.619, (3e-4, 2): 0.604, (1e-3, 2): 0.610}
    results = [{"valid_auc": valid[job.overrides["train.lr"], job.seed]} for job in jobs]
    assert best_overrides(jobs[:2], results[:2]) == {"dcn/em3": {"train.lr": 3e-4}}, "seed 0 alone"
    chosen = best_overrides(jobs, results)
    assert chosen == {"dcn/em3": {"train.lr": 1e-3}}
    final = final_jobs(settings, chosen)
    pairs = twins(jobs, final)
    for job in final:  # every final run scores its seed's chosen trial
        twin = pairs[job.name]
        assert (twin.stage, twin.seed, twin.overrides) == ("search", job.seed, {"train.lr": 1e-3})
    for job in jobs:  # and a trial reuses the final run of an earlier benchmark with its very settings
        assert (pairs[job.name].name, pairs[job.name].overrides) == (f"final/dcn/em3/seed{job.seed}", job.overrides)


def test_a_grid_entry_reads_its_values_as_yaml_and_refuses_other_text():
    assert grid_entry("model.modality_dropout=0,0.3") == ("model.modality_dropout", (0, 0.3))
    assert grid_entry("model.fqformer.modality_queries=true,false") == (
        "model.fqformer.modality_queries",
        (True, False),
    )
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=V1,V2"):
        grid_entry("model.modality_dropout")


def test_a_finished_run_matches_a_config_that_only_adds_settings_at_their_defaults(tmp_path):
    """Runs of an earlier benchmark are reused when every setting added since keeps its default (which keeps the
    old behaviour), and only then."""
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "bench_quality.yaml")
    cfg = cfg.model_copy(update={"output_dir": tmp_path})
    saved = cfg.model_dump(mode="json")
    del saved["train"]["id_table_updates"]  # as a benchmark run before the setting existed wrote it
    saved["bench"] = {"auc_low": -0.01}  # how the summary judges: not the run's
    (tmp_path / "quality.json").write_text(json.dumps({"config": saved, "valid_auc": 0.6}))
    assert _finished(cfg) == {"config": saved, "valid_auc": 0.6}
    assert _finished(with_overrides(cfg, {"train.id_table_updates": "rows"})) is None
    saved["train"]["no_such_setting"] = 1  # a setting since removed: never the same run
    (tmp_path / "quality.json").write_text(json.dumps({"config": saved, "valid_auc": 0.6}))
    assert _finished(cfg) is None


def test_a_run_resumes_only_from_a_checkpoint_that_its_own_config_started(tmp_path):
    """A benchmark stopped mid-run goes on from the run's last checkpoint next time, never from another config's."""
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "bench_quality.yaml")
    cfg = cfg.model_copy(update={"output_dir": tmp_path})
    assert not _resumable(cfg) and (tmp_path / STARTED).is_file()  # a fresh start records its config
    assert not _resumable(cfg), "started, but no checkpoint yet"
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    assert _resumable(cfg)
    other = with_overrides(cfg, {"train.lr": cfg.train.lr * 3})
    assert not _resumable(other), "another config's checkpoint"
    assert not _resumable(cfg), "the other config started afresh and recorded itself"


def test_a_run_started_before_a_setting_existed_still_resumes(tmp_path):
    """A config recorded before a setting was added (its default keeps the old behaviour) is the same run."""
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "bench_quality.yaml")
    cfg = cfg.model_copy(update={"output_dir": tmp_path})
    saved = cfg.model_dump(mode="json", exclude={"bench"})
    del saved["validation"]["drift"]  # as a run started before drift checks existed recorded it
    (tmp_path / STARTED).write_text(json.dumps(saved))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    assert _resumable(cfg)


def test_a_run_recorded_with_its_objective_weights_unset_is_not_taken_for_todays_em3(tmp_path):
    """A weight left to the variant's default trained with whatever the default was then: such a record cannot
    say which, so it is never reused; a job's config writes its weights out, so its own record can."""
    base = load_config(Path(__file__).resolve().parents[2] / "configs" / "bench_quality.yaml")
    cfg = job_config(base, Job("final", "din", "em3", 0, {}), tmp_path)
    assert {name: getattr(cfg.model, name) for name in EM3_OBJECTIVE_WEIGHTS} == EM3_OBJECTIVE_WEIGHTS
    cfg.output_dir.mkdir(parents=True)
    saved = cfg.model_dump(mode="json")
    (cfg.output_dir / "quality.json").write_text(json.dumps({"config": saved, "valid_auc": 0.6}))
    assert _finished(cfg) == {"config": saved, "valid_auc": 0.6}
    saved["model"] |= dict.fromkeys(EM3_OBJECTIVE_WEIGHTS)  # as runs before this rule recorded them: null
    (cfg.output_dir / "quality.json").write_text(json.dumps({"config": saved, "valid_auc": 0.6}))
    assert _finished(cfg) is None


def test_no_two_configurations_train_the_same_model(tmp_path):
    """Every compared configuration differs from every other in the model it trains (after the variant's defaults
    are written out): an ablation that a default change made equal to em3 (em3 without co-engagement, once em3's
    default left it out) would train em3 twice and report a share of exactly nothing."""
    base = load_config(Path(__file__).resolve().parents[2] / "configs" / "bench_quality.yaml")
    models = {name: job_config(base, Job("final", "din", name, 0, {}), tmp_path).model for name in CONFIGS}
    for i, first in enumerate(CONFIGS):
        for second in list(CONFIGS)[i + 1 :]:
            assert models[first] != models[second], f"{first} and {second} train the same model"
