"""em3's lead against the log's size (issue 22, point 6): em3 − two_stage and em3 − two_stage_mlp test AUC, each
with its 95 % interval (the paired two-level bootstrap of the quality benchmark), at every log size, beside the
paper's industrial gain (+0.256 % relative AUC, drawn at each size's two_stage AUC).

Each input is one quality benchmark on the synthetic log (``em3 bench quality --synthetic-impressions N``), e.g.
the 300 k run that chose the learning rates and the 100 k and 1 M runs that reused them (``--chosen-from``):

    .venv/bin/python bench/lead_vs_size.py bench/results/quality_synthetic_{100k,300k,1m}.json \\
        --out bench/results/lead_vs_size.png

Prints a Markdown table (one row per size and baseline) and writes the plot (log x axis).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from matplotlib.figure import Figure

from em3.bench.quality_summary import TARGETS

BASELINES = ("two_stage", "two_stage_mlp")


def lead_rows(summaries: list[dict], backbone: str = "din") -> list[dict]:
    """Per size (ascending) and baseline: ``impressions``, ``baseline``, ``diff``, ``low``, ``high`` (em3 minus the
    baseline, absolute test AUC) and ``paper`` (the paper's relative gain at the size's two_stage AUC)."""
    rows = []
    for summary in sorted(summaries, key=lambda s: s["settings"]["synthetic_impressions"]):
        impressions = summary["settings"]["synthetic_impressions"]
        configs = summary["results"].get(backbone, {})
        if not impressions or "em3" not in configs or "two_stage" not in configs:
            raise ValueError(
                f"{summary.get('command', 'a result')}: want a synthetic-log benchmark with em3 and two_stage on "
                f"{backbone} (settings.synthetic_impressions {impressions}, configs {sorted(configs)})"
            )
        paper = TARGETS["auc_relative"] * configs["two_stage"]["mean"]["auc"]
        versus = {"two_stage": configs["em3"]["auc_bootstrap"]}
        if "two_stage_mlp" in configs:  # the summary holds two_stage_mlp − em3: turned round
            boot = configs["two_stage_mlp"]["auc_vs_em3_bootstrap"]
            versus["two_stage_mlp"] = {"diff": -boot["diff"], "low": -boot["high"], "high": -boot["low"]}
        for baseline, boot in versus.items():
            rows.append(
                {
                    "impressions": impressions,
                    "baseline": baseline,
                    "diff": boot["diff"],
                    "low": boot["low"],
                    "high": boot["high"],
                    "paper": paper,
                }
            )
    return rows


def lead_table(rows: list[dict]) -> str:
    lines = ["| impressions | em3 minus | Δ test AUC [95 % interval] | paper's gain at this AUC |", "|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['impressions']:,} | {r['baseline']} | {r['diff']:+.4f} [{r['low']:+.4f}, "
            f"{r['high']:+.4f}] | +{r['paper']:.4f} |"
        )
    return "\n".join(lines)


def lead_plot(rows: list[dict]) -> bytes:
    """PNG: em3 − each baseline with its interval against the log's size (log x), the paper's gain dashed."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for i, baseline in enumerate(BASELINES):
        mine = [r for r in rows if r["baseline"] == baseline]
        if not mine:
            continue
        x = [r["impressions"] * (1 + 0.04 * (i - 0.5)) for r in mine]  # side by side at each size
        y = [r["diff"] for r in mine]
        errors = [[r["diff"] - r["low"] for r in mine], [r["high"] - r["diff"] for r in mine]]
        ax.errorbar(x, y, yerr=errors, marker="o", capsize=4, label=f"em3 − {baseline}")
    sizes = sorted({r["impressions"] for r in rows})
    paper = [next(r["paper"] for r in rows if r["impressions"] == size) for size in sizes]
    ax.plot(sizes, paper, "k--", linewidth=1, label="paper: +0.256 % relative AUC")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set(
        xlabel="impressions in the synthetic log",
        ylabel="test AUC difference (95 % interval)",
        title="em3's lead against the log's size",
    )
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("results", nargs="+", type=Path, help="quality benchmark JSONs, one per log size")
    parser.add_argument("--backbone", default="din", choices=["din", "dcn"])
    parser.add_argument("--out", type=Path, default=Path("bench/results/lead_vs_size.png"), help="the plot (PNG)")
    args = parser.parse_args(argv)
    rows = lead_rows([json.loads(path.read_text()) for path in args.results], args.backbone)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(lead_plot(rows))
    print(lead_table(rows))
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
