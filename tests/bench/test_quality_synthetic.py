"""The quality benchmark's synthetic table: ``prepare_data`` writes the synthetic native log under the work
directory and takes it through ingest → validate → features (the real encoders), once per settings."""

from pathlib import Path

import pytest

from em3.bench.quality import (
    benchmark_config,
    data_key,
    load_benchmark_data,
    prepare_data,
    synthetic_log_facts,
    with_overrides,
)
from em3.bench.quality_plan import Settings
from em3.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
IMPRESSIONS = 1500


def test_synthetic_native_log_is_written_prepared_once_and_loads(tmp_path):
    base = with_overrides(
        load_config(ROOT / "configs" / "bench_synthetic.yaml"),
        {
            "raw_synthetic.n_users": 30,
            "raw_synthetic.n_items": 24,
            "raw_synthetic.image_size": 32,
            "features.image_grid": 1,
            "features.max_text_tokens": 8,
            "features.batch_size": 8,
        },
    )
    cfg = benchmark_config(base, tmp_path, synthetic=True)
    assert (cfg.ingest.format, Path(cfg.ingest.source)) == ("native", tmp_path / "data" / "raw")

    prepare_data(cfg, IMPRESSIONS)
    log = tmp_path / "data" / "raw" / "impressions.parquet"
    written = log.stat().st_mtime_ns
    data = load_benchmark_data(data_key(cfg))
    rows = sum(len(split.label) for split in (data.train, data.valid, data.test))
    assert 0 < rows <= IMPRESSIONS and data.store.n_rows >= 24
    assert 0 < float(data.train.label.float().mean()) < 1, "clicks and non-clicks"

    facts = synthetic_log_facts(cfg)  # what the summary adds for a synthetic log
    oracle = facts["click_model"]["oracle_auc_by_split"]
    assert set(oracle) == {"train", "valid", "test"} and all(0.5 < value <= 1 for value in oracle.values())
    budget = facts["text_budget"]  # 8 tokens keep the product name, never the material, style and fit at the end
    assert (budget["max_text_tokens"], budget["items"]) == (8, 24)
    assert budget["items_with_a_deciding_word_cut"] == 1.0

    prepare_data(cfg, IMPRESSIONS)  # same settings: nothing is rewritten
    assert log.stat().st_mtime_ns == written
    prepare_data(cfg, IMPRESSIONS + 100)  # another size: the log is written again
    assert log.stat().st_mtime_ns != written


def test_a_negative_impression_count_is_refused_not_read_as_the_sample():
    with pytest.raises(ConfigError, match="--synthetic-impressions must be a positive count.*got -5"):
        Settings(Path("work"), synthetic_impressions=-5)
