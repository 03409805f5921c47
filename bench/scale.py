"""The scale benchmark (issues 6 and 20): ingest → validate → features → train → evaluate on synthetic native
impression logs of growing size, each stage as the real CLI (``python -m em3 <stage>``) in its own process.

For each size (impressions; items = impressions ÷ ``ITEMS_PER``, at most ``--max-items``; users = impressions ÷
``USERS_PER``) the data is written by ``em3.data.synthetic_impressions`` (rendered photos, templated texts), then each
stage runs with the scale config below: the built-in encoders at a small setting (``FEATURES``: EfficientNet-Lite0
on 32×32 inputs, one image token; MiniLM on 12 text tokens), ``train`` bounded to ``--train-steps`` steps of em3
(lora, DIN) followed by its full valid and test evaluation, and ``evaluate`` on that run. ``--last-stage`` stops
each size earlier (the smoke test does); ``--first-stage`` resumes in the folders of ``--work-dir``. Stage processes
run with ``OMP_NUM_THREADS=--threads`` (default 1): on two busy cores, torch's two threads made the encoders
several times slower, not faster.

Per stage: wall seconds of the process (interpreter start and imports included); rows/s (ingest, validate and
train count impressions, features counts items); peak memory: ``peak_rss_mb`` is the process's resident-set
high-water mark from ``wait4`` (anonymous memory plus the file pages it has mapped, such as a memory-mapped token
store), ``peak_anon_mb`` and ``peak_file_mb`` the largest ``RssAnon`` and ``RssFile`` seen by polling
``/proc/<pid>/status`` every ``POLL_S`` seconds. Linux counts in a child's ``ru_maxrss`` the RSS of the process
that spawned it, at the time of its ``exec``: this script therefore imports neither torch nor em3 (about 30 MB),
well below any stage's own peak. Growth between consecutive sizes: ``cost_growth`` = seconds ratio ÷
rows ratio (1 = linear, above 1 = super-linear).

Writes JSON (``--out``, rewritten after every stage) with the keys ``command``, ``seconds``, ``machine``,
``settings``, ``records`` (one per size and stage: ``impressions``, ``items``, ``users``, ``stage``, ``rows``,
``seconds``, ``rows_per_s``, ``peak_rss_mb``, ``peak_anon_mb``, ``peak_file_mb``, and for train ``steps``,
``loop_seconds``, ``samples_per_s``; a failed stage has ``error`` instead and ends its size) and ``growth``
(``stage``, ``from``, ``to``, ``rows_ratio``, ``seconds_ratio``, ``cost_growth``, ``marginal_rows_per_s``: added
rows ÷ added seconds, None when the larger size was not slower; ``rss_ratio``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

STAGES = ("generate", "ingest", "validate", "features", "train", "evaluate")  # generate writes the input
ITEMS_PER, USERS_PER = 10, 50  # impressions per item and per user
POLL_S = 0.2
DEFAULT_SIZES = [10_000, 100_000, 1_000_000]
FEATURES = {"image_size": 32, "image_grid": 1, "max_text_tokens": 12, "batch_size": 64, "device": "cpu"}
MACHINE = "import json; from em3.profiling import machine_info; print(json.dumps(machine_info()))"
GENERATE = """\
import json, sys
from em3.config import RawSyntheticConfig
from em3.data.synthetic_impressions import generate_native_synthetic
settings = json.loads(sys.argv[1])
cfg = RawSyntheticConfig(n_users=settings["users"], n_items=settings["items"], image_size=settings["image_size"])
print(json.dumps(generate_native_synthetic(cfg, settings["impressions"], settings["out_dir"])))
"""


def stage_config(work: Path, train_steps: int, batch_size: int) -> dict:
    """The scale config of one size: every stage reads and writes under ``work``."""
    data = work / "data"
    return {
        "output_dir": str(work / "run"),
        "data": {
            "source": "tables",
            "tables_dir": str(data / "tables"),
            "validation_dir": str(data / "validation"),
            "store_dir": str(data / "features"),
        },
        "ingest": {
            "source": str(data / "raw"),
            "format": "native",
            "native_log": "impressions.parquet",
            "native_items": "items.parquet",
        },
        "features": {**FEATURES, "progress": False},
        "train": {"max_steps": train_steps, "epochs": 1, "batch_size": batch_size, "device": "cpu", "progress": False},
    }


class Polled:
    """Largest RssAnon and RssFile of a running process, read from /proc every ``POLL_S`` seconds."""

    def __init__(self, pid: int):
        self.path = Path(f"/proc/{pid}/status")
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.done.wait(POLL_S):
            try:
                lines = self.path.read_text().splitlines()
            except OSError:
                return
            for line in lines:
                field, _, value = line.partition(":")
                if field in self.peak:
                    self.peak[field] = max(self.peak[field], int(value.split()[0]) * 1024)

    def stop(self) -> dict[str, int]:
        self.done.set()
        self.thread.join()
        return self.peak


def run_measured(command: Sequence[str], log: Path, threads: int | None = None) -> dict:
    """Run ``command`` (output to ``log``; ``threads``: its OMP_NUM_THREADS); its wall seconds and peak memory in
    MiB. Fails with the log's tail."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        polled = Polled(process.pid)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage (ru_maxrss in KiB on Linux)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        peak = polled.stop()
    if process.returncode:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{shlex.join(command)} exited with {process.returncode}; end of {log}:\n{tail}")
    mib = 1 << 20
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss * 1024 / mib, 1),
        "peak_anon_mb": round(peak["RssAnon"] / mib, 1),
        "peak_file_mb": round(peak["RssFile"] / mib, 1),
    }


def run_size(impressions: int, work: Path, stages: Sequence[str], args: argparse.Namespace) -> Iterator[dict]:
    """Generate one size and run ``stages`` on it; one record per stage, as each ends."""
    items = max(1, min(impressions // ITEMS_PER, args.max_items or impressions))
    users = max(1, impressions // USERS_PER)
    config = work / "scale.yaml"
    config.write_text(yaml.safe_dump(stage_config(work, args.train_steps, args.batch_size)))
    settings = {
        "impressions": impressions,
        "items": items,
        "users": users,
        "image_size": args.image_size,
        "out_dir": str(work / "data" / "raw"),
    }
    rows = {
        "generate": impressions,
        "ingest": impressions,
        "validate": impressions,
        "features": items,
        "train": impressions,
        "evaluate": impressions,
    }
    for stage in stages:
        if stage == "generate":
            command = [sys.executable, "-c", GENERATE, json.dumps(settings)]
        elif stage == "evaluate":
            command = [
                sys.executable,
                "-m",
                "em3",
                "evaluate",
                "--config",
                str(config),
                "--runs",
                str(work / "run"),
                "--out-dir",
                str(work / "evaluate"),
            ]
        else:
            command = [sys.executable, "-m", "em3", stage, "--config", str(config)]
        sizes = {"impressions": impressions, "items": items, "users": users, "stage": stage, "rows": rows[stage]}
        try:
            measured = run_measured(command, work / f"{stage}.log", args.threads)
        except RuntimeError as exc:
            print(f"  {impressions:>9,} {stage:<9} FAILED: {exc}", flush=True)
            yield {**sizes, "error": str(exc)[-3000:]}
            return
        record = {**sizes, **measured, "rows_per_s": round(rows[stage] / measured["seconds"], 1)}
        if stage == "train":
            metrics = json.loads((work / "run" / "metrics" / "train.json").read_text())
            steps, loop = metrics["steps"], metrics["train_seconds"]
            rate = round(steps * args.batch_size / loop, 1) if loop else None
            record |= {"steps": steps, "loop_seconds": loop, "samples_per_s": rate}
        rate, peak, anon = record["rows_per_s"], record["peak_rss_mb"], record["peak_anon_mb"]
        print(
            f"  {impressions:>9,} {stage:<9} {record['seconds']:>8.1f} s {rate:>10,.0f} rows/s  "
            f"peak RSS {peak:>7,.0f} MiB (anon {anon:,.0f})",
            flush=True,
        )
        yield record


def growth(records: list[dict]) -> list[dict]:
    """Per stage, each size against the one before: how seconds and peak RSS grow against rows, and the marginal
    rows/s (the added rows over the added seconds: what a row costs once the fixed start-up is paid)."""
    result = []
    for stage in STAGES:
        of_stage = sorted((r for r in records if r["stage"] == stage and "error" not in r), key=lambda r: r["rows"])
        for before, after in zip(of_stage, of_stage[1:], strict=False):
            rows_ratio = after["rows"] / before["rows"]
            seconds_ratio = after["seconds"] / before["seconds"]
            added = after["seconds"] - before["seconds"]
            marginal = round((after["rows"] - before["rows"]) / added, 1) if added > 0 else None
            result.append(
                {
                    "stage": stage,
                    "from": before["impressions"],
                    "to": after["impressions"],
                    "rows_ratio": round(rows_ratio, 2),
                    "seconds_ratio": round(seconds_ratio, 2),
                    "cost_growth": round(seconds_ratio / rows_ratio, 3),
                    "marginal_rows_per_s": marginal,
                    "rss_ratio": round(after["peak_rss_mb"] / before["peak_rss_mb"], 2),
                }
            )
    return result


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[f"{cell:,}" if isinstance(cell, int | float) else str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |" for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def print_report(result: dict) -> None:
    print(f"\n{result['command']}\n{json.dumps(result['machine'])}\n")
    print(
        markdown_table(
            ["impressions", "items", "stage", "rows", "seconds", "rows/s", "peak RSS MiB", "anon MiB", "file MiB"],
            [
                [
                    r["impressions"],
                    r["items"],
                    r["stage"],
                    r["rows"],
                    r["seconds"],
                    r["rows_per_s"],
                    r["peak_rss_mb"],
                    r["peak_anon_mb"],
                    r["peak_file_mb"],
                ]
                for r in result["records"]
                if "error" not in r
            ],
        )
    )
    print()
    print(
        markdown_table(
            ["stage", "from", "to", "rows ×", "seconds ×", "cost growth", "marginal rows/s", "peak RSS ×"],
            [
                [
                    g["stage"],
                    g["from"],
                    g["to"],
                    g["rows_ratio"],
                    g["seconds_ratio"],
                    g["cost_growth"],
                    g["marginal_rows_per_s"],
                    g["rss_ratio"],
                ]
                for g in result["growth"]
            ],
        )
    )
    print(f"\n{result['seconds']:.0f} s")


def plot(result: dict, path: Path) -> None:
    """Seconds and peak RSS of each stage against rows, log-log (imported only now: matplotlib would count in the
    RSS that the stage processes spawned from here inherit)."""
    from matplotlib.figure import Figure

    records = [r for r in result["records"] if "error" not in r and r["stage"] != "generate"]
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, key, label in zip(axes, ("seconds", "peak_rss_mb"), ("seconds", "peak RSS (MiB)"), strict=True):
        for stage in STAGES[1:]:
            points = sorted((r["rows"], r[key]) for r in records if r["stage"] == stage)
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=stage)
        if key == "peak_rss_mb":
            ax.axhline(4096, color="grey", linestyle=":", linewidth=1, label="4 GB bound")
        ax.set(xscale="log", yscale="log", xlabel="rows (impressions; features: items)", ylabel=label)
        ax.grid(True, which="both", linewidth=0.3)
    figure.axes[0].legend(fontsize=8)
    figure.suptitle(f"bench/scale.py: {', '.join(f'{n:,}' for n in result['settings']['sizes'])} impressions")
    figure.savefig(path, dpi=110)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Scale benchmark: ingest, validate, features and train (as the CLI, one process each) on "
        "synthetic native impression logs of growing size; rows/s and peak memory per stage. Writes JSON.",
        epilog="example: nice -n 15 .venv/bin/python bench/scale.py --sizes 10000 100000",
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=DEFAULT_SIZES,
        help=f"impressions per size (items = ÷{ITEMS_PER}, users = ÷{USERS_PER}; default: {DEFAULT_SIZES})",
    )
    parser.add_argument("--train-steps", type=int, default=100, help="train.max_steps at every size (default: 100)")
    parser.add_argument("--batch-size", type=int, default=256, help="train.batch_size (default: 256)")
    parser.add_argument("--image-size", type=int, default=64, help="side of the rendered photos (default: 64)")
    parser.add_argument(
        "--max-items", type=int, help=f"at most this many items whatever the size (default: impressions ÷ {ITEMS_PER})"
    )
    parser.add_argument(
        "--first-stage",
        choices=STAGES,
        default=STAGES[0],
        help="resume: keep each size's folder and start at this stage (default: generate, afresh)",
    )
    parser.add_argument(
        "--last-stage",
        choices=STAGES[1:],
        default=STAGES[-1],
        help=f"run the stages up to this one (default: {STAGES[-1]})",
    )
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the stage processes (default: 1)")
    parser.add_argument("--work-dir", type=Path, help="where data and runs go (default: a temporary folder, removed)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results/scale.json"),
        help="the JSON written (default: bench/results/scale.json)",
    )
    args = parser.parse_args()
    if min(args.sizes) < USERS_PER:
        parser.error(f"--sizes: at least {USERS_PER} impressions per size")
    return args


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    machine = json.loads(subprocess.check_output([sys.executable, "-c", MACHINE], text=True))  # load before the run
    print(command, flush=True)
    root = args.work_dir or Path(tempfile.mkdtemp(prefix="em3-scale-"))
    stages = STAGES[STAGES.index(args.first_stage) : STAGES.index(args.last_stage) + 1]
    result = {
        "command": command,
        "seconds": 0.0,
        "machine": machine,
        "settings": {
            "sizes": sorted(args.sizes),
            "stages": [s for s in stages if s != "generate"],
            "items_per": ITEMS_PER,
            "max_items": args.max_items,
            "users_per": USERS_PER,
            "threads": args.threads,
            "train_steps": args.train_steps,
            "batch_size": args.batch_size,
            "image_size": args.image_size,
            "features": FEATURES,
            "model": "em3 (lora history, DIN), defaults",
        },
        "records": [],
        "growth": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for impressions in sorted(args.sizes):
            work = root / f"{impressions}"
            if args.first_stage == "generate":
                shutil.rmtree(work, ignore_errors=True)
            elif not (work / "data" / "raw").is_dir():
                sys.exit(f"--first-stage {args.first_stage}: {work} holds no generated data; start at generate")
            work.mkdir(parents=True, exist_ok=True)
            for record in run_size(impressions, work, stages, args):
                result["records"].append(record)
                result["growth"] = growth(result["records"])
                result["seconds"] = round(time.perf_counter() - started, 1)
                args.out.write_text(json.dumps(result, indent=2) + "\n")  # after every stage: a long run's partial
    finally:
        if args.work_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print_report(result)
    plot(result, args.out.with_suffix(".png"))
    if any("error" in record for record in result["records"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
