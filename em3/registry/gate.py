"""The promotion gate: a pure decision on a candidate's test metrics against the thresholds and the champion's."""

from __future__ import annotations

import math
from dataclasses import dataclass

from em3.config import RegistryConfig

CHAMPION, CHALLENGER = "champion", "challenger"
Metrics = dict[str, float | None]


@dataclass(frozen=True)
class Decision:
    alias: str  # CHAMPION or CHALLENGER
    reason: str


def decide(
    candidate: Metrics,
    champion: Metrics | None,
    cfg: RegistryConfig,
    compared_on: str = "",
    drift: tuple[str, ...] = (),
) -> Decision:
    """``champion`` when the candidate's required metrics are all finite, its AUC reaches ``min_auc`` and the
    champion's AUC + ``min_delta``, its cold_auc is at most ``cold_tolerance`` below the champion's, and its data's
    validation flagged no ``drift`` (unless ``promote_despite_drift``); otherwise ``challenger``. The reason lists
    the failed checks (for a champion: all checks) and where the champion's metrics come from (``compared_on``). A
    comparison with a champion metric that is missing or not finite is skipped, and the reason says so."""
    unusable = [
        f"{name} is {_describe(candidate.get(name))}"
        for name in cfg.required_metrics
        if not _finite(candidate.get(name))
    ]
    if unusable:
        return Decision(CHALLENGER, "refused: " + "; ".join(unusable))
    auc = candidate["auc"]
    checks = [(auc >= cfg.min_auc, f"auc {auc:.4f} {_cmp(auc, cfg.min_auc)} min_auc {cfg.min_auc:g}")]
    if champion is None:
        checks.append((True, "no champion yet"))
    else:
        checks.append(_versus_champion("auc", candidate, champion, cfg.min_delta, "min_delta"))
        checks.append(_versus_champion("cold_auc", candidate, champion, -cfg.cold_tolerance, "cold_tolerance"))
    if not cfg.promote_despite_drift:
        checks += [(False, f"drift flagged in its data: {flag}") for flag in drift]
    failed = [text for ok, text in checks if not ok]
    reason = "; ".join(failed) if failed else "; ".join(t for _, t in checks)
    reason += f" [{compared_on}]" if champion is not None and compared_on else ""
    return Decision(CHALLENGER if failed else CHAMPION, reason)


def _versus_champion(name: str, candidate: Metrics, champion: Metrics, margin: float, margin_name: str):
    ours, theirs = candidate.get(name), champion.get(name)
    if not (_finite(ours) and _finite(theirs)):
        return True, f"{name} not compared (candidate {_describe(ours)}, champion {_describe(theirs)})"
    bound = theirs + margin
    return ours >= bound, f"{name} {ours:.4f} {_cmp(ours, bound)} champion's {theirs:.4f} {margin:+g} ({margin_name})"


def _cmp(value: float, bound: float) -> str:
    return ">=" if value >= bound else "<"


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _describe(value: object) -> str:
    if value is None:
        return "missing"
    if not isinstance(value, int | float):
        return f"not a number ({value!r})"
    return "NaN" if math.isnan(value) else f"{value:.4f}" if math.isfinite(value) else f"{value} (not finite)"
