"""em3's training cost against the catalogue's size (issue 20, point 1): samples/s of ``two_stage``, ``em3`` with
the catalogue cache (``model.content_cache: catalogue``, the whole catalogue fused at every refresh) and ``em3_read``
(the read-through cache: only the history items a step reads stale or missing are fused), at catalogues of
10,000 to 1,000,000 items, the same batch and history length.

    .venv/bin/python bench/catalogue_scale.py [--sizes 10000 100000 1000000] [--steps 200] [--out FILE]
        [--id-table-updates dense rows] [--staleness 50 1000] [--cache-items N] [--catalogue-max-items N]

``--id-table-updates``: how the ID tables learn (``train.id_table_updates``; each value its own records, config
names suffixed ``+rows`` for row-wise updates). ``--staleness``: the read-through cache's bound in steps
(``model.content_cache_every``; each value its own ``em3_read@S`` records; the catalogue cache keeps 50, today's
default). ``--cache-items``: the read-through cache's capacity (``model.content_cache_items``).
``--catalogue-max-items``: ``em3`` (the catalogue cache) is measured at sizes up to this only (at a million items
it fuses the whole catalogue every 50 steps: hours), so that one run holds every ratio.

Workload: each step's rows have a full history of ``--history`` items, drawn with probability proportional to
``exp(z)``, ``z ~ N(0, 1)`` per item: the synthetic log's popularity term (``popularity_strength`` 1, em3.data
.raw_synthetic), targets the same way. Token widths are small (4 image tokens and 8 text tokens of 64 dims; the
real store has 9 x 1280 and 32 x 384) so that a million items fit in memory; the comparison is of what each step
fuses, not of the encoders' widths. Every (size, configuration) runs in a fresh process, one thread: ``--steps``
timed steps after ``--warmup`` untimed ones, the refresh every ``model.content_cache_every`` (50) steps included, as
``em3.train.trainer`` runs them; peak RSS of that process (the store and the data included, reported apart).
Writes JSON (``--out``): ``command``, ``machine``, ``settings``, ``records`` (``items``, ``config``,
``samples_per_s``, ``items_fused_per_step``, ``peak_rss_mb``, ``store_mb``), ``ratios`` (each config's rate at the
largest size over its rate at the smallest; each ``em3_read`` rate at the smallest size over the catalogue
cache's with the same ID updates, when both ran).
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from em3.config import ModelConfig, TrainConfig
from em3.data.dataset import Split, make_batch
from em3.data.token_store import TokenStore
from em3.models import ModelShapes, Ranker
from em3.profiling import machine_info
from em3.train.optim import make_optimizer
from em3.train.trainer import optimisation_step

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "two_stage": {"variant": "two_stage"},
    "em3": {"variant": "em3", "content_cache": "catalogue", "content_cache_every": 50},  # the first cache
    "em3_read": {"variant": "em3", "content_cache": "read"},
}
IMAGE_TOKENS, TEXT_TOKENS, WIDTH, PATTERNS = 4, 8, 64, 4096
N_USERS = 10_000


def synthetic_catalogue(n_items: int, seed: int) -> TokenStore:
    """``n_items`` items whose tokens repeat ``PATTERNS`` random patterns (building a million distinct ones would
    cost more memory than the benchmark measures; the cost of fusing an item does not depend on its values)."""
    rng = np.random.default_rng(seed)
    pattern = rng.integers(0, PATTERNS, n_items + 1)
    image = rng.standard_normal((PATTERNS, IMAGE_TOKENS, WIDTH), dtype=np.float32).astype(np.float16)[pattern]
    text = rng.standard_normal((PATTERNS, TEXT_TOKENS, WIDTH), dtype=np.float32).astype(np.float16)[pattern]
    image[0], text[0] = 0, 0
    image_mask = np.ones((n_items + 1, IMAGE_TOKENS), dtype=bool)
    text_mask = np.ones((n_items + 1, TEXT_TOKENS), dtype=bool)
    image_mask[0] = text_mask[0] = False
    return TokenStore(
        item_ids=[f"item-{row}" for row in range(1, n_items + 1)],
        image_tokens=image,
        image_mask=image_mask,
        text_tokens=text,
        text_mask=text_mask,
        pooled_image=image.mean(1, dtype=np.float32).astype(np.float16),
        pooled_text=text.mean(1, dtype=np.float32).astype(np.float16),
    )


def skewed_rows(n_items: int, n_rows: int, history: int, seed: int) -> Split:
    """Training rows whose targets and full histories are drawn by the synthetic log's popularity skew."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.exp(torch.randn(n_items, generator=g))
    draw = lambda n: 1 + torch.multinomial(weights, n, replacement=True, generator=g)  # noqa: E731 (item rows)
    return Split(
        user=torch.randint(1, N_USERS, (n_rows,), generator=g),
        item=draw(n_rows),
        context=torch.randint(1, 3, (n_rows, 1), generator=g),
        history=draw(n_rows * history).reshape(n_rows, history),
        label=(torch.rand(n_rows, generator=g) < 0.3).float(),
        cold=torch.zeros(n_rows, dtype=torch.bool),
    )


def variants(args: argparse.Namespace) -> list[tuple[str, dict, str]]:
    """(label, model settings, ID table updates) of every measured configuration."""
    out = []
    for updates in args.id_table_updates:
        suffix = "+rows" if updates == "rows" else ""
        for config in args.configs:
            settings = dict(CONFIGS[config])
            if config != "em3_read":
                out.append((config + suffix, settings, updates))
                continue
            for staleness in args.staleness:
                label = config if staleness == 50 else f"{config}@{staleness}"
                every = {"content_cache_every": staleness, "content_cache_items": args.cache_items}
                out.append((label + suffix, settings | every, updates))
    return out


def measure(n_items: int, label: str, settings: dict, updates: str, args: argparse.Namespace) -> dict:
    """One (catalogue size, configuration) in this process: samples/s over the timed steps, and peak RSS."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    store = synthetic_catalogue(n_items, seed=0)
    steps = args.warmup + args.steps
    rows = skewed_rows(n_items, steps * args.batch_size, args.history, seed=1)
    shapes = ModelShapes(N_USERS, store.n_rows, (3,), store.image_dim, store.text_dim, store.pooled_dim)
    model = Ranker(ModelConfig(**settings), shapes).train()
    train_cfg = TrainConfig(batch_size=args.batch_size, bf16=False, id_table_updates=updates)
    optimizer = make_optimizer(model, train_cfg)
    cache = model.content.cache if model.has_content_cache else None
    fused = (lambda: cache.fused_items) if cache is not None else (lambda: 0)  # items fused without gradient
    every = model.content_cache_every
    for step in range(steps):
        if step == args.warmup:
            started, fused_before = time.perf_counter(), fused()
        if every and step % every == 0:
            model.refresh_content_cache(store)
        index = torch.arange(step * args.batch_size, (step + 1) * args.batch_size)
        batch = make_batch(rows, index, store, model.content_inputs)
        losses = optimisation_step(model, optimizer, batch, train_cfg, torch.device("cpu"))
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"{label} at {n_items} items: loss {losses['loss'].item()}")
    seconds = time.perf_counter() - started
    store_bytes = sum(
        getattr(store, name).nbytes
        for name in ("image_tokens", "text_tokens", "image_mask", "text_mask", "pooled_image", "pooled_text")
    )
    return {
        "items": n_items,
        "config": label,
        "samples_per_s": round(args.steps * args.batch_size / seconds, 1),
        "items_fused_per_step": round((fused() - fused_before) / args.steps, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "store_mb": round(store_bytes / (1 << 20), 1),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="catalogue sizes")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=200, help="timed steps (4 refreshes at the default 50)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--history", type=int, default=30, help="history items per row (the benchmarks' default)")
    parser.add_argument(
        "--id-table-updates", nargs="+", default=["dense"], choices=["dense", "rows"], help="each value measured"
    )
    parser.add_argument(
        "--staleness", type=int, nargs="+", default=[50], help="em3_read: model.content_cache_every values measured"
    )
    parser.add_argument("--cache-items", type=int, default=65536, help="em3_read: model.content_cache_items")
    parser.add_argument(
        "--catalogue-max-items", type=int, default=10**9, help="em3 (the catalogue cache): measured up to this size"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "catalogue_scale.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    started, records = time.perf_counter(), []
    measured = variants(args)
    for n_items in args.sizes:
        for label, settings, updates in measured:  # a fresh process each: its peak RSS is its own
            if settings.get("content_cache") == "catalogue" and n_items > args.catalogue_max_items:
                continue
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                record = pool.submit(measure, n_items, label, settings, updates, args).result()
            print(json.dumps(record), flush=True)
            records.append(record)
    rate = {(r["items"], r["config"]): r["samples_per_s"] for r in records}
    small, large = min(args.sizes), max(args.sizes)
    labels = [label for label, _, _ in measured]
    ratios = {
        f"{label} at {large} / at {small} items": round(rate[large, label] / rate[small, label], 3)
        for label in labels
        if (large, label) in rate
    }
    for label in labels:  # against today's refresh (the catalogue cache, the same ID updates), at the smallest size
        catalogue = "em3+rows" if label.endswith("+rows") else "em3"
        if label.startswith("em3_read") and (small, catalogue) in rate:
            ratios[f"{label} / {catalogue} at {small} items"] = round(rate[small, label] / rate[small, catalogue], 3)
    result = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "seconds": round(time.perf_counter() - started),
        "machine": machine_info(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "records": records,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    main()
