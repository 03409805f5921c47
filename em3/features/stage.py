"""``em3 features`` on the configured tables: the input guard, then the token store."""

from __future__ import annotations

from em3.config import Config
from em3.features.extract import run_features


def features_from_tables(cfg: Config) -> dict:
    """Encode ``data.tables_dir/items.parquet`` into ``data.store_dir`` once the tables passed validation and come
    from ``ingest.source`` (em3.validation.inputs; ``data.allow_unvalidated`` overrides, loudly); returns the
    report of ``run_features``."""
    import pandas as pd

    from em3.validation.inputs import check_stage_inputs

    data = cfg.data
    check_stage_inputs("features", data.tables_dir, data.validation_dir, cfg.ingest.source, data.allow_unvalidated)
    items_path = data.tables_dir / "items.parquet"
    if not items_path.is_file():
        raise FileNotFoundError(f"{items_path} not found: run `em3 ingest` first")
    return run_features(cfg.features, pd.read_parquet(items_path), data.tables_dir, data.store_dir)
