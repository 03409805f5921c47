"""Command line: ``em3 <stage>`` (also ``python -m em3 <stage>``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from em3.config import Config, ConfigError, load_config, parse_config, set_dotted

EPILOG = "Config keys: see em3/config.py; every key can be set in YAML or with --set section.key=value."


def _overrides(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set model.backbone=dcn")
        overrides[key] = yaml.safe_load(value)
    return overrides


def _config(args: argparse.Namespace) -> Config:
    overrides = _overrides(args.set)
    if args.config:
        return load_config(args.config, overrides)
    values: dict = {}
    for key, value in overrides.items():
        set_dotted(values, key, value)
    return parse_config(values, "--set")


def cmd_train(args: argparse.Namespace) -> None:
    from em3.data.loading import load_data
    from em3.report import comparison_rows, markdown_table
    from em3.train import train

    cfg = _config(args)
    result = train(cfg, load_data(cfg), resume=args.resume)
    print(markdown_table(comparison_rows([result.metrics])))
    print(f"metrics: {Path(cfg.output_dir) / 'metrics' / 'train.json'}")


def cmd_demo(args: argparse.Namespace) -> None:
    from em3.demo import run_demo

    backbones = ["din", "dcn"] if args.backbone == "both" else [args.backbone]
    table = run_demo(_config(args), backbones, Path(args.output_dir))
    print("\nTest metrics on the synthetic log (same data, split and seed for every model):\n")
    print(table)
    print(f"\nSaved to {Path(args.output_dir) / 'comparison.md'}; per-model metrics in {args.output_dir}/*/metrics/")


def cmd_compare(args: argparse.Namespace) -> None:
    from em3.report import comparison_rows, markdown_table, read_metrics

    print(markdown_table(comparison_rows(read_metrics(args.metrics))))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="em3", description=__doc__.splitlines()[0] + " EM3 ranking workflow.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser, required: bool) -> None:
        sub.add_argument("--config", required=required, type=Path, help="YAML config (see configs/)")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")

    train_p = commands.add_parser("train", help="train one model", epilog=EPILOG)
    with_config(train_p, required=True)
    train_p.add_argument("--resume", action="store_true", help="continue from <output_dir>/checkpoints/last.pt")
    train_p.set_defaults(run=cmd_train)

    demo_p = commands.add_parser("demo", help="train id_only, two_stage and em3 on synthetic data and compare",
                                 epilog=EPILOG)  # fmt: skip
    with_config(demo_p, required=False)
    demo_p.add_argument("--backbone", choices=["din", "dcn", "both"], default="both")
    demo_p.add_argument("--output-dir", default="runs/demo", help="where runs and the table go (default runs/demo)")
    demo_p.set_defaults(run=cmd_demo)

    compare_p = commands.add_parser("compare", help="print the comparison table of finished runs")
    compare_p.add_argument("metrics", nargs="+", type=Path, help="metrics/train.json files")
    compare_p.set_defaults(run=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"em3 {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0
