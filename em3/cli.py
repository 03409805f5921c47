"""Command line: ``em3 <stage>`` (also ``python -m em3 <stage>``). Other packages add commands through the entry
point group ``em3.commands`` (the orchestration's ``em3 demo`` and ``em3 pipeline ...``: pipelines/cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

import yaml

from em3.bench.quality_plan import add_arguments as add_quality_arguments
from em3.config import Config, ConfigError, config_from_yaml, load_config
from em3.workflow import PipelineError

EPILOG = "Config keys: see em3/config.py; every key can be set in YAML or with --set section.key=value."
COMMAND_PLUGINS = "em3.commands"  # entry points that add commands: add(commands), the parser's subparsers


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


def cmd_train(args: argparse.Namespace) -> None:
    from em3.comparison import comparison_rows, markdown_table
    from em3.data.loading import load_data
    from em3.train import train
    from em3.train.distributed import process_group

    cfg = config_from_args(args)
    with process_group(cfg.train.device) as ctx:  # under torchrun: one of its processes (docs/distributed.md)
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


def cmd_register(args: argparse.Namespace) -> None:
    from em3.registry import log_run, register
    from em3.registry.tracking import redact

    cfg = config_from_args(args)
    run_id = log_run(cfg, args.run, data_hash=args.data_hash)
    result = register(cfg, run_id)
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


def cmd_score(args: argparse.Namespace) -> None:
    from em3.serving.batch import score_log

    cfg = config_from_args(args)
    if args.items:
        from em3.serving.steps import encode_new_items

        if not args.store:
            raise ConfigError("--items needs --store: the folder that keeps the new items' tokens between runs")
        encoded = encode_new_items(cfg, args.model, args.input, args.items, Path(args.store))
        print(f"new items: {encoded['unseen_items']:,}, encoded from {args.items}: {encoded['encoded']:,}")
    store = args.store if args.store and (Path(args.store) / "index.json").is_file() else None
    manifest = score_log(cfg, args.model, args.input, args.output, store)
    model, quarantine = manifest["model"], manifest["quarantine"]
    print(
        f"scored {manifest['output']['rows']:,} of {manifest['input']['rows']:,} rows with {model['uri']} (run "
        f"{model['run_id']}) at {manifest['rows_per_s']:,.0f} rows/s → {manifest['output']['uri']}"
    )
    print(f"refused {quarantine['rows']:,} → {quarantine['uri']} {quarantine['reasons'] or ''}".rstrip())


def cmd_bench_quality(args: argparse.Namespace) -> None:
    import shlex

    from em3.bench.quality import main

    command = shlex.join(["em3", *(args.argv if args.argv is not None else sys.argv[1:])])
    if args.config is None:
        args.config = Path("configs/bench_quality.yaml")
    main(args, config_from_args(args), command)


def cmd_pytorchjob(args: argparse.Namespace) -> None:
    from em3.train.pytorchjob import manifest_yaml, pytorchjob_manifest

    documents = pytorchjob_manifest(
        config_from_args(args), args.image, args.nodes, args.gpus_per_node, args.name, args.namespace, args.volume_claim
    )
    if not args.volume_claim:
        print("note: no --volume-claim: /workspace is an emptyDir, outputs vanish with the pods", file=sys.stderr)
    if args.out is None:
        print(manifest_yaml(documents), end="")
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(manifest_yaml(documents))
    print(f"wrote {args.out}; start it with: kubectl apply -f {args.out}")


def cmd_compare(args: argparse.Namespace) -> None:
    from em3.comparison import comparison_rows, markdown_table, read_metrics

    print(markdown_table(comparison_rows(read_metrics(args.metrics))))


def with_config(sub: argparse.ArgumentParser, required: bool) -> None:
    """Give a command ``--config`` and ``--set`` (read by ``config_from_args``)."""
    sub.add_argument("--config", required=required, type=Path, help="YAML config (see configs/)")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="em3", description="EM3 multimodal ranking: data stages, training, evaluation."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def allow_unvalidated(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--allow-unvalidated",
            action="store_true",
            help="run on tables whose validation failed, "
            "is missing or stale, or from another source than ingest.source (warns loudly)",
        )

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

    score_p = commands.add_parser(
        "score",
        epilog=EPILOG,
        help="score an impression log with a registered model → Parquet, quarantine and manifest (README: Serving)",
    )
    with_config(score_p, required=False)
    score_p.add_argument("--model", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID")
    score_p.add_argument(
        "--input",
        required=True,
        help="impression log: user_id, item_id, ts[, sales_channel_id] (.csv or .parquet, a path or s3://bucket/key)",
    )
    score_p.add_argument(
        "--output",
        required=True,
        help="scores .parquet (a path or s3://bucket/key); the quarantine and manifest go beside it",
    )
    score_p.add_argument("--store", help="token store of items new to the model, scored from their content")
    score_p.add_argument(
        "--items",
        help="items file (item_id, text, image_path; a path or s3://): encode the log's "
        "new items from it into --store first",
    )
    score_p.set_defaults(handler=cmd_score)

    bench_p = commands.add_parser("bench", help="benchmarks (see docs/benchmarks.md)")
    benches = bench_p.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    quality_p = benches.add_parser(
        "quality",
        epilog=EPILOG,
        help="EM3 vs the baselines and its ablations: seeds, paired intervals, targets",
        description="Quality benchmark (docs/benchmarks.md): data prepared once, a budgeted search on the validation "
        "split, then every backbone x configuration x seed scored once on test. Its time grows with the data, the "
        "configurations and the seeds: on 2 cores, the H&M sample's 9 configurations x 2 backbones x 5 seeds took "
        "about 85 min (plus 13 to prepare the data once), two_stage and em3 x 2 backbones x 3 seeds on the H&M "
        "extract (1.6x the purchases) about 50 min.",
    )
    quality_p.add_argument("--config", type=Path, help="base config (default configs/bench_quality.yaml)")
    quality_p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    add_quality_arguments(quality_p)
    quality_p.set_defaults(handler=cmd_bench_quality)

    job_p = commands.add_parser(
        "pytorchjob",
        epilog=EPILOG,
        help="write a Kubeflow PyTorchJob manifest that trains the config on several GPU nodes (docs/distributed.md)",
    )
    with_config(job_p, required=False)
    job_p.add_argument("--image", required=True, help="em3 GPU image (Dockerfile.cuda), e.g. REGISTRY/em3:0.1.0-cuda")
    job_p.add_argument("--nodes", type=int, required=True, help="pods (one Master, the rest Workers)")
    job_p.add_argument("--gpus-per-node", type=int, required=True, help="GPUs per pod: torchrun processes per pod")
    job_p.add_argument("--name", help="job name (default: the config's name, in DNS form)")
    job_p.add_argument("--namespace", help="Kubernetes namespace (default: kubectl's current one)")
    job_p.add_argument("--volume-claim", help="ReadWriteMany PVC mounted as the working directory /workspace")
    job_p.add_argument("--out", type=Path, help="manifest file (default: standard output)")
    job_p.set_defaults(handler=cmd_pytorchjob)

    compare_p = commands.add_parser("compare", help="print the comparison table of finished runs")
    compare_p.add_argument("metrics", nargs="+", type=Path, help="metrics/train.json files")
    compare_p.set_defaults(handler=cmd_compare)
    for plugin in entry_points(group=COMMAND_PLUGINS):  # e.g. pipelines.cli: `em3 demo`, `em3 pipeline ...`
        try:
            add = plugin.load()
        except ImportError as exc:  # the other commands still work
            print(f"em3: the commands of {plugin.value} are unavailable: {exc}", file=sys.stderr)
            continue
        add(commands)
    return parser


def _reported_errors() -> tuple[type[Exception], ...]:
    """The errors a command reports in one line, without a traceback (imported when one is raised: em3 --help
    stays light)."""
    from em3.errors import DataError
    from em3.registry import RegistryError

    return ConfigError, FileNotFoundError, DataError, RegistryError, PipelineError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        args.handler(args)
    except _reported_errors() as exc:
        print(f"em3 {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0
