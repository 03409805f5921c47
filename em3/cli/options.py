"""What every command shares: ``--config`` and ``--set``, and the config they give."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from em3.config import Config, ConfigError, config_from_yaml, load_config

EPILOG = "Config keys: see em3/config.py; every key can be set in YAML or with --set section.key=value."


def parse_overrides(pairs: list[str]) -> dict:
    """``--set KEY=VALUE`` pairs → dotted key → value (read as YAML)."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set model.backbone=dcn")
        overrides[key] = yaml.safe_load(value)
    return overrides


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of ``--config`` (else the embedded defaults) with ``--set`` overrides."""
    overrides = parse_overrides(args.set)
    if getattr(args, "allow_unvalidated", False):
        overrides["data.allow_unvalidated"] = True
    if args.config:
        return load_config(args.config, overrides)
    return config_from_yaml("", "--set", overrides)  # the embedded defaults


def with_config(sub: argparse.ArgumentParser, required: bool) -> None:
    """Give a command ``--config`` and ``--set`` (read by ``config_from_args``)."""
    sub.add_argument("--config", required=required, type=Path, help="YAML config (see configs/)")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")


def allow_unvalidated(sub: argparse.ArgumentParser) -> None:
    """Give a command that reads the tables ``--allow-unvalidated`` (read by ``config_from_args``)."""
    sub.add_argument(
        "--allow-unvalidated",
        action="store_true",
        help="run on tables whose validation failed, "
        "is missing or stale, or from another source than ingest.source (warns loudly)",
    )
