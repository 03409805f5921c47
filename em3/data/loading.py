"""Load the training data a config names."""

from em3.config import Config
from em3.data.dataset import RankingData


def load_data(cfg: Config) -> RankingData:
    if cfg.data.source == "synthetic":
        from em3.data.synthetic import generate_synthetic

        return generate_synthetic(cfg.data, cfg.seed)
    from em3.data.tables import load_tables

    return load_tables(cfg.data.tables_dir, cfg.data.store_dir, cfg.data.max_history)
