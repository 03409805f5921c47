"""Load the training data a config names."""

from em3.config import Config, DataConfig
from em3.data.dataset import RankingData


def load_data(cfg: Config, stage: str = "train") -> RankingData:
    """The config's data; tables only when they passed validation and come from ``ingest.source``
    (em3.validation.inputs; ``data.allow_unvalidated`` overrides, loudly)."""
    if cfg.data.source == "synthetic":
        from em3.data.synthetic_tokens import generate_synthetic

        return generate_synthetic(cfg.data, cfg.seed)
    from em3.validation.inputs import check_stage_inputs

    data = cfg.data
    check_stage_inputs(stage, data.tables_dir, data.validation_dir, cfg.ingest.source, data.allow_unvalidated)
    return tables_data(data)


def tables_data(data: DataConfig) -> RankingData:
    """The tables of ``data.tables_dir`` read as training reads them (every ``data.*`` setting: history rule,
    user features, split), without the validation check (a stage downstream of a checked train step)."""
    from em3.data.tables import load_tables
    from em3.validation.contract import SplitRule

    return load_tables(
        data.tables_dir,
        data.store_dir,
        data.max_history,
        data.history,
        data.user_features,
        data.category_min_rows,
        SplitRule.of_config(data),
    )
