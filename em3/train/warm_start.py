"""Warm start (``train.init_from``, DESIGN §6's continuous training): a run begins from a trained model's weights
instead of a random initialisation.

The model's tables are indexed by its data (item rows of its token store, user indices, context codes), which
change as days are added, so every saved model keeps its ids beside its weights (``ids.json``: the item of each
item row, the user of each user index, each context field's values). Weights are then carried over by id:

- an item, user or context value both models know keeps its row;
- an item new since then gets its ID embedding from its content through the model's content → ID map (the map that
  evaluation fits for the items training never showed, ``model.unseen_ids_from_content``; zero, the neutral ID, for a
  model without content or before the map was fitted);
- a new user and a new context value start neutral: zero, the embedding an unknown user or value is scored with;
- every other weight (content tower, LoRA, backbone) is copied as it is.

A model of another architecture (variant, backbone or widths) cannot be a starting point: that is an error that
names what differs. The same carry-over rebuilds a registered champion for a newer day's rows, so that the gate
scores it where it scores the challenger (``rebuilt_for``, em3.registry.champion).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from em3.config import Config, ConfigError
from em3.data.dataset import RankingData
from em3.models.io import IDS
from em3.models.item_tables import item_embedding_tables
from em3.models.ranker import ModelShapes, Ranker

REGISTRY_PREFIX = "models:/"


def table_ids(data: RankingData, trained: np.ndarray | None = None) -> dict[str, Any]:
    """What the rows of a model's tables stand for (saved as ``ids.json`` with the model): the item of each item
    row, the user of each user index and each context field's values, position i for row i + 1; and the items
    whose ID embedding training learned (``trained``, (n_items,) by item row; the rest came from content)."""
    items = [str(item) for item in data.store.item_ids]
    learned = [] if trained is None else [item for item, was in zip(items, trained[1:], strict=True) if was]
    return {
        "items": items,
        "trained_items": learned,
        "users": [str(user) for user in data.user_ids] if data.user_ids is not None else _numbers(data.n_users),
        "context": dict(zip(_context_names(data), _vocabularies(data), strict=True)),
        "numeric": list(data.inputs.get("numeric", [])),
    }


def _context_names(data: RankingData) -> list[str]:
    """The context fields' names (data built without them: by position)."""
    return data.inputs.get("context") or [f"field{f}" for f in range(len(data.context_cardinalities))]


def _vocabularies(data: RankingData) -> list[list[str]]:
    """Each context field's values by code (data without them, the synthetic token log, by number)."""
    if data.context_vocabularies or not data.context_cardinalities:
        return data.context_vocabularies
    return [_numbers(n) for n in data.context_cardinalities]


def _numbers(n: int) -> list[str]:
    """Ids 1 .. n - 1 as text: the rows of a table whose data has no ids (the synthetic token log)."""
    return [str(i) for i in range(1, n)]


def warm_start(model: Ranker, data: RankingData, cfg: Config) -> tuple[dict[str, Any], np.ndarray]:
    """Load ``cfg.train.init_from`` (a run folder or a model folder; a ``models:/`` URI is fetched into one by
    em3.workflow.fetched_init) into ``model`` by id (see the module's docstring); returns what was carried over,
    and (n_items,) True for the item rows whose ID the starting model learned in training (its ``ids.json`` lists
    them; none for a model saved before it did): carried over, they are not refilled from content."""
    source = cfg.train.init_from
    old, old_cfg, ids = _saved_model(_model_dir(source), source)
    for key in ("variant", "backbone", "embed_dim", "fusion", "history_mode", "pooled_projection"):
        if getattr(old_cfg.model, key) != getattr(cfg.model, key):
            raise ConfigError(
                f"train.init_from: {source} has model.{key} {getattr(old_cfg.model, key)!r}, this run "
                f"{getattr(cfg.model, key)!r}: a warm start needs the same architecture"
            )
    learned = np.zeros(data.n_items, dtype=bool)
    learned[1:] = pd.Index(ids.get("trained_items", [])).get_indexer(data.store.item_ids) >= 0
    return {"init_from": source, **carry_over(old, ids, model, data, source)}, learned


def rebuilt_for(directory: Path, data: RankingData, shapes: ModelShapes) -> tuple[Ranker, Config]:
    """The model saved in ``directory`` rebuilt for ``data`` (``shapes``: its tables' sizes), its weights carried
    over by id, in eval mode: a champion scored on a newer day's rows."""
    old, old_cfg, ids = _saved_model(directory, str(directory))
    model = Ranker(old_cfg.model, shapes)
    carry_over(old, ids, model, data, str(directory))
    return model.eval(), old_cfg


def carry_over(old: Ranker, ids: dict[str, Any], model: Ranker, data: RankingData, source: str) -> dict[str, Any]:
    """``old``'s weights into ``model`` (built for ``data``): tables by id (``ids``: ``old``'s ``table_ids``), the
    rest as they are; returns how many rows of each table were kept and new."""
    new = table_ids(data)
    for inputs in ("context", "numeric"):  # the backbone reads them by position: the same fields, in order
        if list(ids.get(inputs, [])) != list(new[inputs]):
            raise ConfigError(
                f"{source} reads the {inputs} inputs {list(ids.get(inputs, []))}, this data gives "
                f"{list(new[inputs])}: its weights cannot be carried over (set data.user_features to match)"
            )
    old_state, state = old.state_dict(), model.state_dict()
    if mismatched := [k for k in state if k in old_state and _shape_differs(k, old_state[k], state[k])]:
        raise ConfigError(f"train.init_from: {source} does not fit this model ({', '.join(mismatched[:5])} differ)")
    tables = {
        "item_embed.weight": (ids["items"], new["items"]),
        "user_embed.weight": (ids["users"], new["users"]),
        **{
            f"context_embed.tables.{f}.weight": (ids["context"][name], vocabulary)
            for f, (name, vocabulary) in enumerate(new["context"].items())
        },
    }
    summary: dict[str, Any] = {}
    with torch.no_grad():
        for name, value in state.items():
            if name in tables:
                kept = _copy_rows(value, old_state[name], *tables[name])
                summary[name.removesuffix(".weight")] = {"kept": kept, "new": len(tables[name][1]) - kept}
            elif name in old_state:
                value.copy_(old_state[name])
        summary["new_items_from_content"] = _new_items_from_content(model, data, ids["items"])
    return summary


def _saved_model(directory: Path, source: str) -> tuple[Ranker, Config, dict[str, Any]]:
    from em3.models.io import load_model_dir

    if not (directory / IDS).is_file():
        raise ConfigError(
            f"{source} has no {IDS} (saved before warm start existed): a model trained since is needed to carry "
            "its weights over to other data"
        )
    model, cfg = load_model_dir(directory)
    return model, cfg, json.loads((directory / IDS).read_text())


def _model_dir(source: str) -> Path:
    """The model folder of ``source``: a run folder's ``model/``, or the folder itself."""
    if source.startswith(REGISTRY_PREFIX):
        raise ConfigError(
            f"train.init_from: {source} must be fetched first (`em3 train` and the pipeline's train step do: "
            "em3.workflow.fetched_init)"
        )
    path = Path(source)
    if (path / "model").is_dir():
        return path / "model"
    if path.is_dir():
        return path
    raise ConfigError(f"train.init_from: {source} is neither a run or model folder nor a models:/ URI")


def _shape_differs(name: str, old: torch.Tensor, new: torch.Tensor) -> bool:
    """Whether a weight cannot be carried over: tables may differ in rows (they are copied by id), not in width."""
    if name in ("item_embed.weight", "user_embed.weight") or name.startswith("context_embed.tables."):
        return old.shape[1:] != new.shape[1:]
    return old.shape != new.shape


def _copy_rows(table: torch.Tensor, old: torch.Tensor, old_ids: list[str], new_ids: list[str]) -> int:
    """Row i + 1 of ``table`` (id ``new_ids[i]``) from the row of the same id in ``old``, zero for an id ``old``
    lacks; row 0 (unknown, padding) from ``old``'s row 0. Returns how many ids were found."""
    where = pd.Index(old_ids).get_indexer(new_ids)  # -1: new
    found = where >= 0
    rows = torch.zeros_like(table)
    rows[0] = old[0]
    rows[torch.from_numpy(np.flatnonzero(found) + 1)] = old[torch.from_numpy(where[found] + 1)].to(table)
    table.copy_(rows)
    return int(found.sum())


def _new_items_from_content(model: Ranker, data: RankingData, old_items: list[str]) -> int:
    """Set the ID embedding of the items the old model did not know from their content (``Ranker.id_from_content``)."""
    new_rows = np.flatnonzero(pd.Index(old_items).get_indexer(data.store.item_ids) < 0) + 1
    if model.content is None or not len(new_rows):
        return 0
    was_training = model.training
    model.eval()  # the content embedding as the model scores it (no dropout)
    content = item_embedding_tables(model, data.store, 1024, content_rows=new_rows)["content"][new_rows]
    model.train(was_training)
    table = model.item_embed.weight
    table[torch.from_numpy(new_rows)] = model.id_from_content(torch.from_numpy(content).to(table))
    return len(new_rows)
