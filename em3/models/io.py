"""A trained model on disk: ``model.safetensors`` + ``config.yaml`` + ``shapes.json``; rebuilt without pickle.
``ids.json`` (em3.train.warm_start) says which item, user and context value each table row stands for."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_model, save_model

from em3.atomic import atomic_file, staged_dir
from em3.config import Config, parse_config
from em3.models.ranker import ModelShapes, Ranker

WEIGHTS, CONFIG, SHAPES, IDS = "model.safetensors", "config.yaml", "shapes.json", "ids.json"
# absent from models saved before they existed; zero means what those models did: two_stage's missing vectors, and
# the content -> ID map of unseen items (zero: the neutral ID)
OPTIONAL_WEIGHTS = ("content.missing.", "history_content.missing.", "content_to_id")
# model settings added after models were saved without them: such a model was trained with these values, not with
# today's defaults
SAVED_BEFORE = {
    "history_similarity": False,
    "content_tokens": "fine",
    "modality_dropout": 0.0,
    "modality_dropout_text_share": 0.5,
}
SAVED_BEFORE_FQFORMER = {"modality_queries": False}


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Atomic safetensors save (de-duplicates the tensors the history branch shares with the target side)."""
    with atomic_file(path) as tmp:
        save_model(model, str(tmp))


def save_model_dir(
    directory: Path, model: torch.nn.Module, cfg: Config, shapes: ModelShapes, ids: dict | None = None
) -> None:
    """Weights, config and data shapes (what rebuilds the model) and the tables' ``ids`` into a staged folder that
    replaces ``directory`` only when complete: a crash never leaves a model directory that looks whole."""
    with staged_dir(Path(directory), WEIGHTS) as staging:
        save_model(model, str(staging / WEIGHTS))
        (staging / CONFIG).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        (staging / SHAPES).write_text(json.dumps(asdict(shapes), indent=2))
        if ids is not None:
            (staging / IDS).write_text(json.dumps(ids))


def load_model_dir(directory: str | Path, device: str = "cpu") -> tuple[Ranker, Config]:
    """Rebuild a trained model (in eval mode) and its config from a model directory."""
    directory = Path(directory)
    missing = [name for name in (WEIGHTS, CONFIG, SHAPES) if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} is not a model directory: missing {', '.join(missing)}")
    values = yaml.safe_load((directory / CONFIG).read_text())
    values["model"] = {**SAVED_BEFORE, **values.get("model", {})}
    values["model"]["fqformer"] = {**SAVED_BEFORE_FQFORMER, **values["model"].get("fqformer", {})}
    cfg = parse_config(values, str(directory / CONFIG))
    shapes = json.loads((directory / SHAPES).read_text())
    shapes["context_cardinalities"] = tuple(shapes["context_cardinalities"])
    model = Ranker(cfg.model, ModelShapes(**shapes))
    missing, unexpected = load_model(model, str(directory / WEIGHTS), strict=False, device=device)
    # models saved before an optional weight existed keep it at zero, which is what they did (OPTIONAL_WEIGHTS)
    missing = [name for name in missing if not name.startswith(OPTIONAL_WEIGHTS)]
    if missing or unexpected:
        raise ValueError(
            f"{directory / WEIGHTS}: does not fit the model its config describes "
            f"(missing {missing}, unexpected {unexpected})"
        )
    return model.to(device).eval(), cfg
