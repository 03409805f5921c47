"""The benchmark's search: one grid for every configuration and backbone, the best validation AUC chosen."""

import argparse
from pathlib import Path

import pytest

from em3.bench.quality import best_overrides, final_jobs, search_jobs, seed0_twins
from em3.bench.quality_plan import Settings, grid_entry


def test_the_search_crosses_the_learning_rates_with_every_grid_setting_alike():
    settings = Settings(Path("w"), backbones=("din", "dcn"), configs=("two_stage", "em3"), lr_grid=(3e-4, 1e-3),
                        grid=(("model.modality_dropout", (0.0, 0.3)),))  # fmt: skip
    jobs = search_jobs(settings)
    assert len(jobs) == 2 * 2 * 4 and len({job.name for job in jobs}) == len(jobs)
    for backbone in ("din", "dcn"):
        for config in ("two_stage", "em3"):
            points = [job.overrides for job in jobs if (job.backbone, job.config) == (backbone, config)]
            assert sorted(tuple(p.values()) for p in points) == [(3e-4, 0.0), (3e-4, 0.3), (1e-3, 0.0), (1e-3, 0.3)]
    assert {job.seed for job in jobs} == {0}
    aucs = {job.name: 0.6 + (0.01 if job.overrides == {"train.lr": 1e-3, "model.modality_dropout": 0.3} else 0)
            for job in jobs}  # fmt: skip
    chosen = best_overrides(jobs, [{"valid_auc": aucs[job.name]} for job in jobs])
    assert chosen["dcn/em3"] == {"train.lr": 1e-3, "model.modality_dropout": 0.3}
    twins = seed0_twins(jobs, final_jobs(Settings(Path("w"), backbones=("din", "dcn"), configs=("two_stage", "em3"),
                                                  seeds=(0, 1)), chosen))  # fmt: skip
    assert len(twins) == 4, "seed 0 of each final configuration reuses its chosen trial"


def test_a_grid_entry_reads_its_values_as_yaml_and_refuses_other_text():
    assert grid_entry("model.modality_dropout=0,0.3") == ("model.modality_dropout", (0, 0.3))
    assert grid_entry("model.fqformer.modality_queries=true,false") == ("model.fqformer.modality_queries",
                                                                         (True, False))  # fmt: skip
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=V1,V2"):
        grid_entry("model.modality_dropout")
