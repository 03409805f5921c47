"""The data and model stages (DESIGN §6): ``em3 generate | ingest | validate | features | train | evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from em3.cli.options import EPILOG, allow_unvalidated, config_from_args, with_config


def cmd_train(args: argparse.Namespace) -> None:
    from em3.comparison import comparison_rows, markdown_table
    from em3.data.loading import load_data
    from em3.train import train
    from em3.train.distributed import process_group
    from em3.workflow import fetched_init

    cfg = config_from_args(args)
    with process_group(cfg.train.device) as ctx, fetched_init(cfg) as cfg:  # torchrun: one of its processes
        result = train(cfg, load_data(cfg), resume=args.resume)
    if ctx.is_main:
        print(markdown_table(comparison_rows([result.metrics])))
        print(f"metrics: {Path(cfg.output_dir) / 'metrics' / 'train.json'}")


def cmd_generate(args: argparse.Namespace) -> None:
    from em3.data.synthetic_hm import generate_raw_synthetic

    cfg = config_from_args(args)
    summary = generate_raw_synthetic(cfg.raw_synthetic, cfg.data.raw_dir)
    print(json.dumps(summary, indent=2, default=str))


def cmd_ingest(args: argparse.Namespace) -> None:
    from em3.ingest import run_ingest

    cfg = config_from_args(args)
    manifest = run_ingest(cfg.ingest, cfg.data.tables_dir)
    print(json.dumps({"tables": cfg.data.tables_dir, "rows": manifest.get("rows")}, indent=2, default=str))


def cmd_validate(args: argparse.Namespace) -> None:
    from em3.validation import run_validate

    cfg = config_from_args(args)
    report = run_validate(cfg.validation, cfg.data.tables_dir, cfg.data.validation_dir, cfg.ingest.source)
    for check in report["tables"]:
        kept, rows_in, quarantined = check["rows_kept"], check["rows_in"], check["rows_quarantined"]
        print(
            f"{check['stage']:>8} {check['table']:<13} kept {kept:>10,} of {rows_in:>10,}, quarantined {quarantined:,}"
        )
    print(f"validation passed; report and quarantine in {cfg.data.validation_dir}")


def cmd_features(args: argparse.Namespace) -> None:
    from em3.features import features_from_tables

    cfg = config_from_args(args)
    report = features_from_tables(cfg)
    print(json.dumps({k: report[k] for k in ("items", "items_encoded", "items_reused", "seconds")}, default=str))
    print(f"token store: {cfg.data.store_dir}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from em3.data.loading import load_data
    from em3.evaluation import run_evaluate

    cfg = config_from_args(args)
    runs = args.runs or sorted(path.parent for path in Path(args.runs_root).glob("*/model"))
    if not runs:
        raise FileNotFoundError(f"no trained runs under {args.runs_root}/*/model; train first or pass --runs")
    summary = run_evaluate(runs, load_data(cfg, "evaluate"), cfg.evaluate, Path(args.out_dir))
    print(json.dumps(summary["models"], indent=2))
    print(f"report: {Path(args.out_dir) / 'report.html'}")


def add_commands(commands: argparse._SubParsersAction) -> None:
    for name, run, help_text in (
        ("generate", cmd_generate, "write the synthetic raw data (H&M layout, rendered images) to data.raw_dir"),
        ("ingest", cmd_ingest, "raw logs (ingest.source: folder or s3://) → canonical tables in data.tables_dir"),
        ("validate", cmd_validate, "check the canonical tables; report and quarantine in data.validation_dir"),
        ("features", cmd_features, "frozen image/text encoders → the token store in data.store_dir"),
    ):
        stage = commands.add_parser(name, help=help_text, description=help_text, epilog=EPILOG)
        with_config(stage, required=False)
        stage.set_defaults(handler=run)
    allow_unvalidated(commands.choices["features"])

    train_p = commands.add_parser("train", help="train one model", epilog=EPILOG)
    with_config(train_p, required=False)
    allow_unvalidated(train_p)
    train_p.add_argument("--resume", action="store_true", help="continue from <output_dir>/checkpoints/last.pt")
    train_p.set_defaults(handler=cmd_train)

    evaluate_p = commands.add_parser(
        "evaluate", help="test metrics, cold-start similarities and plots for trained runs", epilog=EPILOG
    )
    with_config(evaluate_p, required=False)
    evaluate_p.add_argument("--runs", nargs="*", type=Path, help="run directories (default: every RUNS_ROOT/*/model)")
    evaluate_p.add_argument("--runs-root", default="runs", help="where to look for runs (default runs)")
    evaluate_p.add_argument("--out-dir", default="metrics", help="evaluate.json, plots/ and report.html go here")
    evaluate_p.set_defaults(handler=cmd_evaluate)
