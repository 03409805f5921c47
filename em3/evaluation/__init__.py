"""The evaluate stage: DESIGN §2 metrics of trained runs, similarity metrics, plots and the HTML report."""

from em3.evaluation.similarity import behaviour_similarity, material_similarity
from em3.evaluation.stage import run_evaluate

__all__ = ["behaviour_similarity", "material_similarity", "run_evaluate"]
