"""Jobs around trained models: ``em3 score``, ``em3 bench quality``, ``em3 pytorchjob``, ``em3 compare``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from em3.bench.quality_plan import add_arguments as add_quality_arguments
from em3.cli.options import EPILOG, config_from_args, with_config
from em3.config import ConfigError


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


def add_commands(commands: argparse._SubParsersAction) -> None:
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
