"""Load the training data a config names."""

from em3.config import Config
from em3.data.dataset import RankingData


def load_data(cfg: Config) -> RankingData:
    if cfg.data.source == "synthetic":
        from em3.data.synthetic import generate_synthetic

        return generate_synthetic(cfg.data, cfg.seed)
    raise ValueError(f"data.source {cfg.data.source!r} is not supported")
