"""The quality benchmark (issue 5, item 2): EM3 against the baselines and its ablations on real data, over seeds.

1. Data: the base config's source (by default the shared H&M sample) through ingest → validate → features, once,
   under the work directory; re-used while the ingest and feature settings are unchanged.
2. Search, on the validation split only, with the same budget for everyone (DESIGN §3): every configuration on
   every backbone tries each point of one grid (learning rates, crossed with ``--grid`` settings) on the search
   seeds (``--search-seeds``; seed 0 alone by default) and keeps the point of the best mean validation AUC.
3. Final runs: every backbone × configuration × seed, trained with early stopping on validation, then scored once
   on the test split (DESIGN §2 metrics, through ``em3.evaluation``). Each run records its validation curve, best
   epoch, steps, stop reason and seconds.
4. Summary (``em3.bench.quality_summary``): mean ± std over seeds, paired differences to ``two_stage`` and the
   issue's targets, printed as tables and written as JSON plus a plot.

Every run keeps its result in its own folder under the work directory, so an interrupted benchmark resumes where
it stopped; runs go to a pool of worker processes (one torch thread each).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from datetime import date
from functools import cache
from itertools import product
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from em3.atomic import atomic_file, finite_or_null, write_bytes, write_json
from em3.bench.quality_plan import BASELINE, CONFIGS, Job, Settings
from em3.config import Config, ConfigError, parse_config, set_dotted
from em3.progress import progress_bar

if TYPE_CHECKING:
    from em3.data.dataset import RankingData

PREPARED = "prepared.json"  # written last by prepare_data: the data folders are complete for these settings


def with_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    values = cfg.model_dump(mode="json")
    for key, value in overrides.items():
        set_dotted(values, key, value)
    return parse_config(values, "em3.bench.quality")


def benchmark_config(base: Config, work_dir: Path, synthetic: bool = False) -> Config:
    """``base`` with its data folders under ``work_dir`` (the benchmark never writes into the project's data/);
    ``synthetic``: ingest reads the synthetic native log that ``prepare_data`` writes to ``work_dir/data/raw``."""
    data = work_dir / "data"
    folders = {
        "data.tables_dir": data / "tables",
        "data.validation_dir": data / "validation",
        "data.store_dir": data / "features",
        "data.raw_dir": data / "raw",
    }
    overrides: dict[str, Any] = {key: str(path) for key, path in folders.items()}
    if synthetic:
        overrides |= {
            "data.source": "tables",
            "ingest.source": str(data / "raw"),
            "ingest.format": "native",
            "ingest.native_log": "impressions.parquet",
            "ingest.native_items": "items.parquet",
        }
    return with_overrides(base, overrides)


def job_config(base: Config, job: Job, work_dir: Path) -> Config:
    """The job's config, with its objective weights written out: a run recorded with a weight left to its variant's
    default is not reused once that default changes (it no longer matches), and never was what it claimed."""
    overrides = {**CONFIGS[job.config], **job.overrides, "model.backbone": job.backbone, "seed": job.seed}
    cfg = with_overrides(base, overrides)
    update = {"name": job.name.replace("/", "_"), "output_dir": work_dir / "runs" / job.name}
    return cfg.model_copy(update={**update, "model": cfg.model.with_objective_weights()})


def prepare_data(cfg: Config, synthetic_impressions: int = 0) -> None:
    """ingest → validate → features into the config's data folders, unless done already with the same settings;
    with ``synthetic_impressions``, first the synthetic native log (``cfg.raw_synthetic``, that many impressions)
    is written to ``ingest.source``."""
    import pandas as pd

    from em3.features import run_features
    from em3.ingest import run_ingest
    from em3.validation import run_validate

    stamp_path = cfg.data.tables_dir.parent / PREPARED
    stamp = {
        "ingest": cfg.ingest.model_dump(mode="json"),
        "features": cfg.features.model_dump(mode="json"),
        "validation": cfg.validation.model_dump(mode="json"),
    }
    if synthetic_impressions:
        stamp["synthetic"] = {"impressions": synthetic_impressions, **cfg.raw_synthetic.model_dump(mode="json")}
    if stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        return
    stamp_path.unlink(missing_ok=True)
    if synthetic_impressions:
        from em3.data.synthetic_impressions import generate_native_synthetic

        print(f"writing {synthetic_impressions} synthetic impressions to {cfg.ingest.source}", flush=True)
        generate_native_synthetic(cfg.raw_synthetic, synthetic_impressions, Path(cfg.ingest.source))
    print(f"preparing data from {cfg.ingest.source} (ingest, validate, features)", flush=True)
    run_ingest(cfg.ingest, cfg.data.tables_dir)
    run_validate(cfg.validation, cfg.data.tables_dir, cfg.data.validation_dir)
    items = pd.read_parquet(cfg.data.tables_dir / "items.parquet")
    run_features(cfg.features, items, cfg.data.tables_dir, cfg.data.store_dir)
    write_json(stamp_path, stamp)


def data_key(cfg: Config) -> str:
    """What identifies a config's training data: its data section and the ingest settings its tables must come
    from (loading checks the tables' recorded source). One split for every seed: the synthetic generator always
    gets seed 0 (run seeds vary initialisation and batch order only)."""
    sections = {"data": cfg.data.model_dump(mode="json"), "ingest": cfg.ingest.model_dump(mode="json")}
    return json.dumps({"seed": 0, **sections}, sort_keys=True)


@cache
def load_benchmark_data(key: str):
    """The training data for a ``data_key`` (loaded once per process)."""
    from em3.data.loading import load_data

    return load_data(parse_config(json.loads(key), "em3.bench.quality"))


WORKER_THREADS = 1  # torch threads of each training process (the pool runs settings.workers of them at once)


def _worker_init(parent: int) -> None:
    import torch

    torch.set_num_threads(WORKER_THREADS)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int, every: float = 2.0) -> None:
    """Stop this worker once the benchmark process ``parent`` is gone (killed alone, e.g. by ``kill PID``): a worker
    must not train on as an orphan. Its run resumes from its checkpoints when the benchmark is started again."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def run_job(base: Config, job: Job, work_dir: Path, twin: Job | None = None) -> dict:
    """Train (and for a final run, score on test) one job; reuse its saved result when it finished before.

    ``twin``: a job with this very config but for name and folder (a final run's chosen search trial of its seed,
    or a search trial's final run from an earlier benchmark). When it finished, its model is the one this job would
    train (the test flag changes no step), so it is reused: scored for a final run, read for a search trial.
    A final run that finished before its per-item similarity scores were kept is scored again, not trained."""
    from em3.evaluation.stage import evaluate_run, shared_inputs
    from em3.train import train

    cfg = job_config(base, job, work_dir)
    result_path = cfg.output_dir / "quality.json"
    trained = _finished(cfg)
    if trained is not None and (job.stage == "search" or (cfg.output_dir / PER_ITEM).is_file()):
        return trained
    data = load_benchmark_data(data_key(cfg))
    twin_cfg = job_config(base, twin, work_dir) if twin is not None else None
    trained_in = cfg.output_dir
    reusable = trained is None and twin_cfg is not None and _placeless(twin_cfg) == _placeless(cfg)
    if reusable and (trained := _finished(twin_cfg)) is not None:
        trained_in = twin_cfg.output_dir
    if trained is not None and "trained_in" in trained:  # where the model is (it may have reused another run's)
        trained_in = work_dir / trained["trained_in"]
    if trained is None:
        metrics = train(cfg, data, resume=_resumable(cfg), test=job.stage == "final").metrics
        trained = {
            "valid_auc": metrics["valid"]["auc"],
            "best_epoch": metrics["best_epoch"],
            "valid_curve": [h["auc"] for h in metrics["valid_history"]],
            "stopped_by": metrics["stopped_by"],
            "steps": metrics["steps"],
            "train_seconds": metrics["train_seconds"],
        }
    record = {**asdict(job), **{key: trained[key] for key in TRAINED}, "config": cfg.model_dump(mode="json")}
    if trained_in != cfg.output_dir:
        record["trained_in"] = str(trained_in.relative_to(work_dir))
    if job.stage == "final":
        scored = evaluate_run(trained_in, data, cfg.evaluate, shared_inputs(data, cfg.evaluate))
        cfg.output_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(cfg.output_dir / "test_logits.npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, scored.logits)
        behaviour = scored.behaviour if scored.behaviour is not None else np.array([])  # no content embedding
        with atomic_file(cfg.output_dir / PER_ITEM) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, material_similarity=scored.material, behaviour_similarity=behaviour)
        record["test"] = scored.metrics
    write_json(result_path, record)
    return record


PER_ITEM = "test_per_item.npz"  # a final run's per-item similarity scores: cold items' material, popular behaviour


def _per_item_scores(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / PER_ITEM) as saved:
        return dict(saved)


STARTED = "started.json"  # the config a run was started with (a checkpoint of another config is never resumed)
TRAINED = ("valid_auc", "best_epoch", "valid_curve", "stopped_by", "steps", "train_seconds")


def _finished(cfg: Config) -> dict | None:
    """The saved result of the run in ``cfg.output_dir`` if it finished with this very config, else None."""
    path = cfg.output_dir / "quality.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if _same_run(record["config"], cfg, path) else None


def _resumable(cfg: Config) -> bool:
    """Whether the run in ``cfg.output_dir`` was started with this very config and left a checkpoint (the trainer
    writes one at every epoch's end): a benchmark stopped mid-run then goes on from there, which a long run (the
    1 M-impression leg takes hours a run) needs. Records the config of a run that starts afresh."""
    started = cfg.output_dir / STARTED
    if started.is_file() and _same_run(json.loads(started.read_text()), cfg, started):
        return (cfg.output_dir / "checkpoints" / "last.pt").is_file()
    write_json(started, cfg.model_dump(mode="json", exclude={"bench"}))
    return False


def _same_run(saved: dict, cfg: Config, path: Path) -> bool:
    """Whether a config saved by a run (at ``path``) is ``cfg``: read with today's defaults for settings added since
    (a new setting's default keeps the old behaviour); one that no longer parses never matches. The ``bench``
    section (how the summary judges) is not the run's."""
    try:
        values = parse_config(saved, str(path)).model_dump(mode="json", exclude={"bench"})
    except ConfigError:
        return False
    return values == cfg.model_dump(mode="json", exclude={"bench"})


def _placeless(cfg: Config) -> dict:
    return cfg.model_dump(mode="json", exclude={"name", "output_dir"})


def run_jobs(
    pool: ProcessPoolExecutor,
    base: Config,
    jobs: list[Job],
    work_dir: Path,
    desc: str,
    twins: dict[str, Job] | None = None,
) -> list[dict]:
    """Run ``jobs`` on the worker pool in their order; results in the same order. ``twins``: by job name, a search
    trial whose model the job reuses (see ``run_job``)."""
    twins = twins or {}
    results: list[dict | None] = [None] * len(jobs)
    bar = progress_bar(total=len(jobs), desc=desc, unit="run", disable=not base.train.progress)  # progress: false
    futures = {pool.submit(run_job, base, job, work_dir, twins.get(job.name)): i for i, job in enumerate(jobs)}
    for future in as_completed(futures):
        i = futures[future]
        results[i] = future.result()
        bar.update()
        bar.set_postfix_str(f"{jobs[i].name}: valid auc {results[i]['valid_auc']:.4f}", refresh=False)
    bar.close()
    return results


def search_jobs(settings: Settings) -> list[Job]:
    """Every configuration on every backbone, each point of the grid (the learning rates crossed with
    ``settings.grid``), on every search seed: one budget for all."""
    keys = ["train.lr", *(key for key, _ in settings.grid)]
    points = [
        dict(zip(keys, values, strict=True))
        for values in product(settings.lr_grid, *(values for _, values in settings.grid))
    ]
    return [
        Job("search", backbone, name, seed, overrides, trial)
        for seed in settings.search_seeds
        for backbone in settings.backbones
        for name in settings.configs
        for trial, overrides in enumerate(points)
    ]


def best_overrides(jobs: list[Job], results: list[dict]) -> dict[str, dict[str, Any]]:
    """Per ``backbone/config``, the overrides of its best mean validation AUC over the search seeds."""
    aucs: dict[tuple[str, int], list[float]] = {}
    overrides: dict[tuple[str, int], dict[str, Any]] = {}
    for job, result in zip(jobs, results, strict=True):
        point = (f"{job.backbone}/{job.config}", job.trial)
        aucs.setdefault(point, []).append(result["valid_auc"])
        overrides[point] = job.overrides
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for (key, trial), values in aucs.items():
        if key not in best or np.mean(values) > best[key][0]:
            best[key] = (float(np.mean(values)), overrides[key, trial])
    return {key: chosen for key, (_, chosen) in best.items()}


def earlier_choices(settings: Settings) -> dict[str, dict[str, Any]]:
    """The settings the search of ``settings.chosen_from`` (a benchmark's JSON) chose, for each backbone and
    configuration this benchmark runs."""
    path = settings.chosen_from
    try:
        chosen = json.loads(path.read_text())["search"]["chosen"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--chosen-from {path}: not a quality benchmark's results with a search ({exc})") from exc
    wanted = [f"{backbone}/{config}" for backbone in settings.backbones for config in settings.configs]
    if missing := [key for key in wanted if key not in chosen]:
        raise ConfigError(f"--chosen-from {path}: its search chose nothing for {missing}; it has {sorted(chosen)}")
    return {key: chosen[key] for key in wanted}


def twins(search: list[Job], final: list[Job]) -> dict[str, Job]:
    """By job name, the run with the same backbone, configuration, seed and overrides in the other stage: a final
    run's chosen search trial of its seed (whose model the final run scores instead of training it again), and a
    search trial's final run (whose model an earlier benchmark may have trained already)."""

    def key(job: Job) -> tuple:
        return job.backbone, job.config, job.seed, json.dumps(job.overrides, sort_keys=True)

    search_by_key = {key(job): job for job in search}
    final_of_search = {job.name: replace(job, stage="final") for job in search}
    return {**final_of_search, **{job.name: search_by_key[key(job)] for job in final if key(job) in search_by_key}}


def final_jobs(settings: Settings, chosen: dict[str, dict[str, Any]]) -> list[Job]:
    """Seed-major order: whenever the benchmark is cut short, the first seeds are complete for every configuration
    (a rerun with fewer ``--seeds`` summarises them)."""
    jobs = []
    for seed in settings.seeds:
        for backbone in settings.backbones:
            for name in settings.configs:
                jobs.append(Job("final", backbone, name, seed, chosen.get(f"{backbone}/{name}", {})))
    return jobs


def run_quality(base: Config, settings: Settings, log: Callable[[str], None] = print) -> dict:
    """The whole benchmark; returns what ``quality.json`` holds (see ``em3.bench.quality_summary``)."""
    from em3.bench.quality_summary import summarise

    started = time.perf_counter()
    cfg = benchmark_config(base, settings.work_dir, synthetic=settings.synthetic_impressions > 0)
    if cfg.data.source == "tables":
        prepare_data(cfg, settings.synthetic_impressions)
    search, final = (search_jobs(settings) if settings.chosen_from is None else []), []
    spawn = get_context("spawn")
    with ProcessPoolExecutor(
        settings.workers, mp_context=spawn, initializer=_worker_init, initargs=(os.getpid(),)
    ) as pool:
        search_results = run_jobs(pool, cfg, search, settings.work_dir, "search (validation)", twins(search, []))
        if settings.chosen_from is None:
            chosen = best_overrides(search, search_results)
            seeds = ", ".join(map(str, settings.search_seeds))
            log(f"chosen settings (mean validation AUC, seeds {seeds}): {json.dumps(chosen)}")
        else:
            chosen = earlier_choices(settings)
            log(f"settings chosen by the search of {settings.chosen_from}: {json.dumps(chosen)}")
        final = final_jobs(settings, chosen)
        final_results = run_jobs(pool, cfg, final, settings.work_dir, "final runs (test)", twins(search, final))
    folders = {job.name: job_config(cfg, job, settings.work_dir).output_dir for job in final}
    logits = {name: np.load(folder / "test_logits.npy") for name, folder in folders.items()}
    per_item = {name: _per_item_scores(folder) for name, folder in folders.items()}
    data = load_benchmark_data(data_key(job_config(cfg, final[0], settings.work_dir)))
    summary = summarise(final, final_results, logits, per_item, data, settings, base.bench)
    summary["data"]["behaviour_similarity_references"] = behaviour_references_on(data, cfg)
    if settings.synthetic_impressions:
        summary["data"].update(synthetic_log_facts(cfg))
    trials = [{**asdict(job), **_curve(r)} for job, r in zip(search, search_results, strict=True)]
    search_settings = {"lr_grid": settings.lr_grid, "grid": dict(settings.grid), "seeds": settings.search_seeds}
    if settings.chosen_from is not None:
        search_settings = {"chosen_from": str(settings.chosen_from)}
    summary["search"] = {**search_settings, "chosen": chosen, "trials": trials}
    summary["runs"] = [{"name": job.name, **_curve(r)} for job, r in zip(final, final_results, strict=True)]
    summary["protocol"] = protocol_check(search_results + final_results)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def behaviour_references_on(data: RankingData, cfg: Config) -> dict[str, float]:
    """The frozen content's and chance's behaviour similarity on the test split's popular items
    (``em3.evaluation.similarity.behaviour_references``)."""
    from em3.evaluation.similarity import behaviour_references
    from em3.evaluation.stage import HELD_OUT, shared_inputs

    shared = shared_inputs(data, cfg.evaluate, "test")
    reference = shared.behaviour[HELD_OUT]
    frozen = shared.raw_content[np.arange(data.store.n_rows)].numpy().astype(np.float32)  # (n_rows, D)
    return behaviour_references(frozen, reference.interactions, reference.popular_items, cfg.evaluate.k_neighbours)


def synthetic_log_facts(cfg: Config) -> dict[str, Any]:
    """What the synthetic log lets a reader check: the ceiling (how well the true click logits rank the clicks, over
    the whole log and on each split as ingest placed it) and the text budget (the share of items whose text holds
    a deciding word past the encoder's ``max_text_tokens``; DESIGN §4 wants it under 1 %)."""
    from em3.data.synthetic_impressions import deciding_words, items_table, native_catalogue, oracle_by_split
    from em3.data.text_budget import words_cut
    from em3.features.encoders import load_tokenizer
    from em3.validation.contract import read_manifest

    source = Path(cfg.ingest.source)
    click_model = json.loads((source / "click_model.json").read_text())
    params = read_manifest(cfg.data.tables_dir)["params"]
    dates = [date.fromisoformat(params[name]) for name in ("valid_start", "test_start")]
    click_model["oracle_auc_by_split"] = oracle_by_split(source, *dates)
    catalogue = native_catalogue(cfg.raw_synthetic)
    tokens = cfg.features.max_text_tokens
    cut = words_cut(
        items_table(catalogue)["text"].tolist(),
        deciding_words(catalogue),
        load_tokenizer(cfg.features.text_encoder),
        tokens,
    )
    budget = {"max_text_tokens": tokens, "items": len(cut), "items_with_a_deciding_word_cut": float(cut.mean())}
    return {"click_model": click_model, "text_budget": budget}


def _curve(result: dict) -> dict:
    return {key: result.get(key) for key in TRAINED}


def protocol_check(results: list[dict]) -> dict:
    """How many runs peaked at their last epoch (a budget that cuts runs short shows here) and why runs stopped."""
    peaked_last = sum(r["best_epoch"] == len(r["valid_curve"]) - 1 for r in results)
    reasons = Counter(str(r["stopped_by"]) for r in results)
    return {"runs": len(results), "best_epoch_is_last": peaked_last, "stopped_by": dict(reasons)}


QUICK = {  # --quick: the in-memory synthetic log, tiny models, a few steps: checks the machinery, not quality
    "data": {
        "source": "synthetic",
        "max_history": 8,
        "valid_days": 3,
        "test_days": 4,
        "synthetic": {"n_users": 150, "n_items": 300, "impressions_per_user": 30, "n_days": 20},
    },
    "model": {
        "embed_dim": 16,
        "mlp_hidden": [16],
        "attention_hidden": [8],
        "cic_dim": 8,
        "fqformer": {"d_model": 16, "n_heads": 2},
    },
    "train": {"epochs": 1, "batch_size": 128, "progress": False},
}


def main(args: argparse.Namespace, base: Config, command: str) -> dict:
    """`em3 bench quality`: run, write ``--out`` and the plot, print the tables."""
    from em3.bench.quality_summary import tables
    from em3.evaluation.plots import seed_spread_plot
    from em3.profiling import machine_info

    settings = Settings(
        args.work_dir,
        backbones=tuple(args.backbones),
        configs=tuple(args.configs),
        seeds=tuple(range(args.seeds)),
        search_seeds=tuple(range(args.search_seeds)),
        lr_grid=tuple(args.lr_grid),
        grid=tuple(args.grid),
        workers=args.workers,
        n_boot=args.n_boot,
        synthetic_impressions=args.synthetic_impressions,
        chosen_from=args.chosen_from,
    )
    if args.quick:
        values = base.model_dump(mode="json")
        for section, update in QUICK.items():
            values[section] = {**values[section], **update}
        base = parse_config(values, "em3.bench.quality --quick")
        settings = replace(settings, backbones=("din",), seeds=(0, 1), n_boot=50, lr_grid=(3e-3,))
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    summary = run_quality(base, settings)
    machine = {**machine_info(), "torch_threads": WORKER_THREADS, "workers": settings.workers}  # what each run had
    summary = {"command": command, "started": started, "machine": machine, **summary}
    write_json(args.out, summary)
    aucs = {
        b: {c: [s["auc"] for s in e["seeds"].values()] for c, e in cs.items()} for b, cs in summary["results"].items()
    }
    plot = args.plot or args.out.with_name(args.out.stem + "_auc.png")
    write_bytes(plot, seed_spread_plot(aucs, BASELINE))
    print(tables(finite_or_null(summary)))
    print(f"results: {args.out}, plot: {plot} ({summary['seconds']:.0f} s)")
    return summary
