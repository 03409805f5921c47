"""The model registry's commands: ``em3 register | promote | rollback | models``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from em3.cli.options import config_from_args, with_config


def cmd_register(args: argparse.Namespace) -> None:
    from em3.registry import log_run, register
    from em3.registry.tracking import redact
    from em3.workflow import champion_scores, drift_flags

    cfg = config_from_args(args)
    champion = champion_scores(Path(args.run), cfg)  # the gate compares on this run's test rows
    run_id = log_run(cfg, args.run, data_hash=args.data_hash)
    result = register(cfg, run_id, champion, drift_flags(cfg.data.validation_dir))
    print(f"{result['model']} version {result['version']} → {result['alias']}: {result['reason']}")
    print(f"MLflow UI: mlflow ui --backend-store-uri {redact(cfg.registry.tracking_uri)}")


def cmd_promote(args: argparse.Namespace) -> None:
    from em3.registry import promote

    result = promote(config_from_args(args), args.version, args.reason)
    print(json.dumps(result, indent=2, default=str))


def cmd_rollback(args: argparse.Namespace) -> None:
    from em3.registry import rollback

    result = rollback(config_from_args(args), args.reason)
    print(json.dumps(result, indent=2, default=str))


def cmd_models(args: argparse.Namespace) -> None:
    from em3.registry import history

    for row in history(config_from_args(args)):
        tags = row["tags"]
        aliases = ",".join(row["aliases"]) or "-"
        print(f"v{row['version']:<4} {aliases:<12} auc {tags.get('test_auc', 'n/a'):<22} {tags.get('gate_reason', '')}")


def add_commands(commands: argparse._SubParsersAction) -> None:
    register_p = commands.add_parser("register", help="log a run to MLflow and register it behind the gate")
    with_config(register_p, required=False)
    register_p.add_argument("--run", type=Path, required=True, help="run directory (holds model/ and metrics/)")
    register_p.add_argument("--data-hash", help="hash of the training data (e.g. from the ingest manifest)")
    register_p.set_defaults(handler=cmd_register)

    promote_p = commands.add_parser("promote", help="make a registered version the champion (audited)")
    with_config(promote_p, required=False)
    promote_p.add_argument("--version", type=int, required=True)
    promote_p.add_argument("--reason", required=True, help="why; recorded in the audit tags")
    promote_p.set_defaults(handler=cmd_promote)

    rollback_p = commands.add_parser("rollback", help="restore the previous champion (audited)")
    with_config(rollback_p, required=False)
    rollback_p.add_argument("--reason", required=True, help="why; recorded in the audit tags")
    rollback_p.set_defaults(handler=cmd_rollback)

    models_p = commands.add_parser("models", help="list registered versions with aliases and gate decisions")
    with_config(models_p, required=False)
    models_p.set_defaults(handler=cmd_models)
