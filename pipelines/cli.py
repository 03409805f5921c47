"""The orchestration's commands, added to ``em3``'s command line through the entry point group ``em3.commands``
(pyproject.toml): ``em3 demo`` and ``em3 pipeline compile | run | submit``. Each command imports its pipeline when it
runs, so that ``em3 --help`` loads no orchestration library."""

from __future__ import annotations

import argparse
from pathlib import Path

from em3.cli.options import EPILOG, config_from_args, parse_overrides, with_config
from em3.config import ConfigError
from em3.workflow import RUNNERS, VARIANTS


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``demo`` and ``pipeline`` to the ``em3`` parser's ``commands``."""

    def with_variants(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="models to train")

    demo_p = commands.add_parser(
        "demo",
        epilog=EPILOG,
        help="synthetic data → the whole pipeline locally (kfp.local) "
        "→ metrics per model, the gate's decision, the registered version",
    )
    with_config(demo_p, required=False)
    with_variants(demo_p)
    demo_p.add_argument("--output-dir", default="runs/demo", help="pipeline outputs and MLflow (default runs/demo)")
    demo_p.set_defaults(handler=cmd_demo)

    pipeline_p = commands.add_parser("pipeline", help="the Kubeflow pipeline: compile, run here, submit to a cluster")
    actions = pipeline_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    compile_p = actions.add_parser("compile", help="compile the pipeline to YAML for the Kubeflow UI")
    compile_p.add_argument(
        "--out",
        type=Path,
        help="output file (default: pipelines/<pipeline>.yaml in a checkout, else ./<pipeline>.yaml)",
    )
    compile_p.add_argument(
        "--pipeline",
        choices=("em3", "score"),
        default="em3",
        help="em3 (train and register, default) or score (pipelines/em3_score_pipeline.py)",
    )
    compile_p.set_defaults(handler=cmd_pipeline_compile)
    run_p = actions.add_parser("run", epilog=EPILOG, help="run the whole pipeline on this machine (kfp.local)")
    with_config(run_p, required=False)
    with_variants(run_p)
    run_p.add_argument("--local", action="store_true", required=True, help="run here (on a cluster: `submit`)")
    run_p.add_argument("--pipeline-root", type=Path, default=Path("runs/pipeline"), help="task outputs go here")
    run_p.add_argument("--synthetic", action="store_true", help="generate raw_synthetic data instead of ingest.source")
    run_p.add_argument("--no-cache", action="store_true", help="rerun tasks whose inputs are unchanged")
    run_p.add_argument(
        "--runner",
        choices=RUNNERS,
        default="subprocess",
        help="each task a subprocess of this "
        "environment (default), or a container of the image EM3_IMAGE (`make image`)",
    )
    run_p.add_argument(
        "--pipeline",
        choices=("em3", "score"),
        default="em3",
        help="em3 (train and register, "
        "default) or score: --input scored by --model, new items from --items, to --output",
    )
    run_p.add_argument("--model", default="models:/em3@champion", help="score: the model (default the champion)")
    run_p.add_argument("--input", help="score: the impression log (.csv or .parquet, a path or s3://)")
    run_p.add_argument("--items", help="score: items file for new items (item_id, text, image_path)")
    run_p.add_argument("--output", help="score: scores .parquet (a path or s3://)")
    run_p.set_defaults(handler=cmd_pipeline_run)
    submit_p = actions.add_parser("submit", epilog=EPILOG, help="create a run on a Kubeflow Pipelines endpoint")
    with_config(submit_p, required=False)
    with_variants(submit_p)
    submit_p.add_argument("--host", required=True, help="Kubeflow Pipelines API, e.g. http://localhost:8080")
    submit_p.add_argument("--experiment", default="em3", help="Kubeflow experiment (default em3)")
    submit_p.add_argument("--run-name", help="name of the run (default: generated)")
    submit_p.add_argument("--namespace", help="Kubeflow profile namespace (multi-user installations)")
    submit_p.add_argument("--no-cache", action="store_true", help="run every task, even unchanged ones")
    submit_p.set_defaults(handler=cmd_pipeline_submit)
    schedule_p = actions.add_parser(
        "schedule", epilog=EPILOG, help="create a recurring daily run on a Kubeflow Pipelines endpoint"
    )
    with_config(schedule_p, required=False)
    with_variants(schedule_p)
    schedule_p.add_argument("--cron", required=True, help="when, as crontab writes it: '0 3 * * *' is 03:00 daily")
    schedule_p.add_argument("--host", required=True, help="Kubeflow Pipelines API, e.g. http://localhost:8080")
    schedule_p.add_argument(
        "--dataset-uri",
        required=True,
        help="the folder the pods share, or s3://bucket/prefix, that keeps the dataset between daily runs",
    )
    schedule_p.add_argument("--experiment", default="em3", help="Kubeflow experiment (default em3)")
    schedule_p.add_argument("--name", default="em3-daily", help="name of the recurring run (default em3-daily)")
    schedule_p.add_argument("--namespace", help="Kubeflow profile namespace (multi-user installations)")
    schedule_p.set_defaults(handler=cmd_pipeline_schedule)
    replay_p = actions.add_parser(
        "replay",
        epilog=EPILOG,
        help="replay the source's last days as daily runs here (kfp.local): drift, warm start, the gate, per day",
    )
    with_config(replay_p, required=False)
    replay_p.add_argument("--days", type=int, default=5, help="how many of the source's last days (default 5)")
    replay_p.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=["em3"], help="models to train each day (default em3)"
    )
    replay_p.add_argument(
        "--shift",
        metavar="K:KIND",
        help="inject a shift into the K-th replayed day (0 first): K:labels (label rate x3) or K:photos (no photos)",
    )
    replay_p.add_argument(
        "--no-scratch", action="store_true", help="skip the from-scratch model each day (the warm start's saving)"
    )
    replay_p.add_argument("--pipeline-root", type=Path, default=Path("runs/replay"), help="everything goes here")
    replay_p.set_defaults(handler=cmd_pipeline_replay)


def _compiled_yaml(source_yaml: Path) -> Path:
    """Where ``em3 pipeline compile`` writes by default: beside the pipeline's source in a checkout (the YAML that
    is committed and uploaded), else ``<name>.yaml`` in the current folder (the wheel's own folder is not yours)."""
    in_checkout = (source_yaml.parents[1] / "pyproject.toml").is_file()
    return source_yaml if in_checkout else Path(source_yaml.name)


def cmd_demo(args: argparse.Namespace) -> None:
    from pipelines.demo import demo_config, run_demo

    output_dir = Path(args.output_dir)
    cfg = config_from_args(args) if args.config else demo_config(output_dir, parse_overrides(args.set))
    table = run_demo(cfg, output_dir, args.variants)
    print("\nThe whole pipeline on synthetic data (kfp.local); test metrics of every model on the same split:\n")
    print(table)
    print(f"\nSaved to {output_dir / 'summary.md'}")


def cmd_pipeline_compile(args: argparse.Namespace) -> None:
    if args.pipeline == "score":
        from pipelines.em3_score_pipeline import SCORE_YAML, compile_score

        print(f"compiled: {compile_score(args.out or _compiled_yaml(SCORE_YAML))}")
        return
    from pipelines.em3_run import PIPELINE_YAML, compile_em3

    print(f"compiled: {compile_em3(args.out or _compiled_yaml(PIPELINE_YAML))}")


def cmd_pipeline_run(args: argparse.Namespace) -> None:
    if args.pipeline == "score":
        _run_score_pipeline(args)
        return
    from pipelines.em3_run import run_local, summary_table

    summary = run_local(
        config_from_args(args),
        args.pipeline_root,
        args.variants,
        args.synthetic,
        cache=not args.no_cache,
        runner=args.runner,
    )
    print(summary_table(summary))


def _run_score_pipeline(args: argparse.Namespace) -> None:
    from pipelines.em3_score_pipeline import run_score_local

    if not args.input:
        raise ConfigError("--pipeline score needs --input: the impression log to score")
    manifest = run_score_local(
        config_from_args(args),
        args.pipeline_root,
        args.input,
        args.output or "",
        args.items or "",
        args.model,
        cache=not args.no_cache,
        runner=args.runner,
    )
    print(
        f"scored {manifest['output']['rows']:,} of {manifest['input']['rows']:,} rows with {manifest['model']['uri']}"
        f"; refused {manifest['quarantine']['rows']:,} {manifest['quarantine']['reasons'] or ''}".rstrip()
    )
    print(f"written to {args.output or 'the pipeline root ' + str(args.pipeline_root)}")


def cmd_pipeline_submit(args: argparse.Namespace) -> None:
    from pipelines.em3_run import submit

    caching = False if args.no_cache else None  # None: each task's own setting
    run_id = submit(
        args.host, config_from_args(args), args.variants, args.experiment, args.run_name, args.namespace, caching
    )
    print(f"created run {run_id} on {args.host} (experiment {args.experiment!r})")


def cmd_pipeline_schedule(args: argparse.Namespace) -> None:
    from pipelines.em3_run import schedule_daily

    recurring = schedule_daily(
        args.host,
        config_from_args(args),
        args.cron,
        args.dataset_uri,
        args.variants,
        args.experiment,
        args.name,
        args.namespace,
    )
    print(f"created recurring run {recurring} on {args.host}: {args.cron!r}, each run adds the day before it")


def cmd_pipeline_replay(args: argparse.Namespace) -> None:
    import json

    from em3.atomic import write_bytes, write_json
    from em3.replay import SHIFTS, replay_plot, replay_table
    from pipelines.em3_run import replay_local

    shift = None
    if args.shift:
        position, _, kind = args.shift.partition(":")
        if not position.isdigit() or kind not in SHIFTS:
            raise ConfigError(f"--shift {args.shift!r}: expected K:KIND, K a replayed day (0 first), KIND in {SHIFTS}")
        shift = (int(position), kind)
    rows = replay_local(
        config_from_args(args), args.pipeline_root, args.days, args.variants, shift, not args.no_scratch
    )
    write_json(args.pipeline_root / "replay.json", rows)
    write_bytes(args.pipeline_root / "replay.png", replay_plot(rows))
    print(replay_table(rows))
    print(json.dumps({row["day"]: row.get("reason", row["outcome"]) for row in rows}, indent=1))
    print(f"saved: {args.pipeline_root / 'replay.json'}, {args.pipeline_root / 'replay.png'}")
