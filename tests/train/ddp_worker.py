"""Run by tests/train/test_ddp.py under torchrun: train the given config, then save this rank's weights and its
view of the (sharded) validation metrics to OUT.

Rank 1 trains with ``output_dir`` OUT/rank1_output, which must stay absent: rank 0 alone writes the run's files."""

import json
import sys
from pathlib import Path

import torch

from em3.config import load_config
from em3.data.loading import load_data
from em3.train import train
from em3.train.distributed import process_group
from em3.train.trainer import evaluate


def main(config: str, out: str) -> None:
    cfg = load_config(config)
    with process_group(cfg.train.device) as ctx:
        if ctx.rank:
            cfg = cfg.model_copy(update={"output_dir": Path(out) / f"rank{ctx.rank}_output"})
        data = load_data(cfg)
        model = train(cfg, data).model
        torch.save(model.state_dict(), Path(out) / f"weights_rank{ctx.rank}.pt")
        valid = evaluate(model, data.valid, data, cfg, ctx)  # each rank predicts half the rows
        (Path(out) / f"valid_rank{ctx.rank}.json").write_text(json.dumps(valid))


if __name__ == "__main__":
    main(*sys.argv[1:])
