"""Where a training step's time goes (issue 20, point 2): ``two_stage`` against ``em3`` on the workload of
``bench/speed.py`` (full histories drawn uniformly from a synthetic catalogue), one thread, step by step as
``em3.train.trainer`` runs them.

    .venv/bin/python bench/step_profile.py [--length 50] [--steps 60] [--items 50000] [--out FILE]
        [--id-table-updates dense|rows] [--content-cache read|catalogue] [--staleness 1000]
        [--token-widths small|encoders]

Each step is cut into: ``batch`` (the cache refresh when due, and gathering the batch's content), the forward
pass's ``target content`` (the FQ-Former and head with gradient; two_stage's projection), ``history content`` (em3:
cache reads, stale items fused without gradient, the LoRA head; two_stage: the projection), ``backbone`` (DIN or
DCN with the context embeddings), ``forward rest`` (ID embeddings, CIC, the loss), ``backward``, and ``optimiser``
(gradient clipping and the update). Configurations alternate step by step, so both see the same machine load; the
first ``--warmup`` steps are not counted. Writes JSON (``--out``): ``command``, ``machine``, ``settings``,
``configs`` (per configuration: ``ms_per_step`` and ``ms`` by part), ``ratios`` (em3 over two_stage, whole step
and by part).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from em3.config import ModelConfig, TrainConfig
from em3.data.dataset import make_batch
from em3.models import ModelShapes, Ranker
from em3.profiling import machine_info
from em3.train.optim import clip_gradients, make_optimizer

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("speed", ROOT / "bench" / "speed.py")
speed = sys.modules["speed"] = importlib.util.module_from_spec(_spec)  # registered first: it defines dataclasses
_spec.loader.exec_module(speed)  # the workload of bench/speed.py, shared
CONFIGS = {"two_stage": {"variant": "two_stage"}, "em3": {"variant": "em3"}}
PARTS = ("batch", "target content", "history content", "backbone", "forward rest", "backward", "optimiser")


class Profiled:
    """One configuration in training, its step timed by part (forward parts through wrappers of the model's own
    methods, so the model runs unchanged)."""

    def __init__(self, name: str, args: argparse.Namespace, store, rows):
        torch.manual_seed(0)
        shapes = ModelShapes(speed.N_USERS, store.n_rows, (3,), store.image_dim, store.text_dim, store.pooled_dim)
        settings = {**CONFIGS[name], "backbone": args.backbone}
        if name == "em3":
            settings |= {"content_cache": args.content_cache, "content_cache_every": args.staleness}
        self.model = Ranker(ModelConfig(**settings), shapes).train()
        self.cfg = TrainConfig(batch_size=args.batch_size, id_table_updates=args.id_table_updates)
        self.optimizer = make_optimizer(self.model, self.cfg)
        self.store, self.rows = store, rows
        self.batches = torch.arange(len(rows)).split(args.batch_size)
        self.steps, self.ms = 0, defaultdict(float)
        self.counting = False
        for method, part in (
            ("_target_content", "target content"),
            ("_history_content", "history content"),
            ("score", "backbone"),
        ):
            setattr(self.model, method, self._timed(getattr(self.model, method), part))

    def _timed(self, method, part: str):
        def run(*args, **kwargs):
            started = time.perf_counter()
            out = method(*args, **kwargs)
            self._add(part, started)
            return out

        return run

    def _add(self, part: str, started: float) -> float:
        now = time.perf_counter()
        if self.counting:
            self.ms[part] += 1000 * (now - started)
        return now

    def step(self, counting: bool) -> None:
        self.counting = counting
        started = time.perf_counter()
        every = self.model.content_cache_every
        if every and self.steps % every == 0:
            self.model.refresh_content_cache(self.store)
        index = self.batches[self.steps % len(self.batches)]
        batch = make_batch(self.rows, index, self.store, self.model.content_inputs)
        forward_started = self._add("batch", started)
        inner = sum(self.ms[part] for part in ("target content", "history content", "backbone"))
        _, losses = self.model(batch)
        inner = sum(self.ms[part] for part in ("target content", "history content", "backbone")) - inner
        now = self._add("forward rest", forward_started)
        if counting:
            self.ms["forward rest"] -= inner
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        now = self._add("backward", now)
        clip_gradients(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self._add("optimiser", now)
        self.steps += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=50, help="history items per row, every slot a real item")
    parser.add_argument("--steps", type=int, default=60, help="counted steps per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="uncounted steps first")
    parser.add_argument("--items", type=int, default=50_000, help="catalogue size (bench/speed.py's default)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--backbone", choices=["din", "dcn"], default="din")
    parser.add_argument("--id-table-updates", choices=["dense", "rows"], default="dense")
    parser.add_argument("--content-cache", choices=["catalogue", "read"], default="read", help="em3's cache")
    parser.add_argument("--staleness", type=int, default=1000, help="em3: model.content_cache_every")
    parser.add_argument(
        "--token-widths", choices=list(speed.TOKEN_WIDTHS), default="small", help="as bench/speed.py's option"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "step_profile.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    machine = machine_info()
    settings = speed.Settings(args.items, args.batch_size, args.backbone, "cpu", 1, token_widths=args.token_widths)
    store = speed.catalogue(settings)
    rows = speed.full_history_rows(settings, args.length, speed.N_BATCHES * args.batch_size)
    profiled = {name: Profiled(name, args, store, rows) for name in CONFIGS}
    for step in range(args.warmup + args.steps):
        for each in profiled.values():  # alternating: both see the same load
            each.step(counting=step >= args.warmup)
    configs = {}
    for name, each in profiled.items():
        ms = {part: round(each.ms[part] / args.steps, 2) for part in PARTS}
        configs[name] = {"ms_per_step": round(sum(ms.values()), 2), "ms": ms}
    base, em3 = configs["two_stage"], configs["em3"]
    ratios = {"step": round(em3["ms_per_step"] / base["ms_per_step"], 3)}
    ratios |= {part: round(em3["ms"][part] / base["ms"][part], 2) if base["ms"][part] else None for part in PARTS}
    result = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine,
        "settings": {key: str(value) for key, value in vars(args).items()},
        "configs": configs,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| part | two_stage ms | em3 ms | em3 share of its step |\n|---|---|---|---|")
    for part in PARTS:
        print(
            f"| {part} | {base['ms'][part]:.1f} | {em3['ms'][part]:.1f} | {em3['ms'][part] / em3['ms_per_step']:.0%} |"
        )
    print(f"| step | {base['ms_per_step']:.1f} | {em3['ms_per_step']:.1f} | em3 / two_stage {ratios['step']:.2f} |")


if __name__ == "__main__":
    main()
