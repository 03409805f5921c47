"""What a trained model needs besides its weights to score rows of the data contract (``user_id, item_id, ts``
and the context columns), saved next to the weights in its MLflow Model:

- the ids: item ids in token-store row order, user ids in the order training indexed them (index 0 = unknown);
- the inputs as training encoded them: per user, the codes of the user-attribute context fields and the numeric
  inputs; per row-level context column (``sales_channel_id``), value -> code (anything else is 0, unknown);
- the behaviour history: every positive of the training tables (user, time key, item row) and the history rule,
  from which a scored row's history is built as in training (em3.data.history);
- the content embeddings of the catalogue: per item, the content vector the target side and the history side of
  the model compute from its tokens, so that serving needs no token store for the items it was trained on;
- the feature settings of the token store it was trained on, to refuse a store of new items encoded otherwise.

Everything is read off what ``em3.data.loading.load_data`` gives training (not re-derived), so serving encodes
rows exactly as training did. Saved as ``catalogue.safetensors`` (arrays) and ``catalogue.json``: no pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from em3.config import Config
from em3.data.history import history_time
from em3.data.tables import USER_PREFIX
from em3.data.token_store import TokenStore
from em3.errors import DataError
from em3.models.history import NO_GRAD_CHUNK, HistoryContent
from em3.models.ranker import Ranker
from em3.validation.contract import SPLITS, SplitRule, read_interactions

ARRAYS, INDEX = "catalogue.safetensors", "catalogue.json"


class ServingError(DataError):
    """A model, catalogue or token store that cannot serve; the message names it and what to do."""


@dataclass
class Catalogue:
    item_ids: list[str]  # row i + 1 of the model's item table
    user_ids: list[str]  # index i + 1 of the model's user table
    context: list[str]  # the model's categorical context fields, in order ("user.<column>" or a log column)
    row_codes: dict[str, dict[str, int]]  # log column -> value (as text) -> code; other values 0
    history_rule: str
    max_history: int
    features: dict  # token shapes (and encoder fingerprints when known) of the store the model trained on
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    # user_context (n_users, F_user) and user_numeric (n_users, G): per user index, row 0 = unknown user (zeros);
    # positives.user / .time / .item: every positive of the tables; content.target / .history: (n_items, E);
    # unit_content (n_items, D) float16: frozen content as unit vectors, for models with model.history_similarity

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        save_file({name: value.contiguous() for name, value in self.tensors.items()}, str(directory / ARRAYS))
        index = {
            name: getattr(self, name)
            for name in ("item_ids", "user_ids", "context", "row_codes", "history_rule", "max_history", "features")
        }
        (directory / INDEX).write_text(json.dumps(index))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Catalogue:
        directory = Path(directory)
        missing = [name for name in (ARRAYS, INDEX) if not (directory / name).is_file()]
        if missing:
            raise ServingError(f"{directory} is not a serving catalogue: missing {', '.join(missing)}")
        return cls(**json.loads((directory / INDEX).read_text()), tensors=load_file(str(directory / ARRAYS)))


def store_features(store: TokenStore, store_dir: Path) -> dict:
    """Token shapes of a store and, when its report is there, the encoders that wrote it."""
    features = {"image_tokens": list(store.image_tokens.shape[1:]), "text_tokens": list(store.text_tokens.shape[1:])}
    report = Path(store_dir) / "report.json"
    if report.is_file():
        values = json.loads(report.read_text())
        features |= {f"{name}_encoder": values[name]["encoder"] for name in ("image", "text") if name in values}
    return features


def feature_mismatch(expected: dict, found: dict) -> list[str]:
    """The settings where a token store (``found``) differs from the model's (``expected``), as text."""
    return [
        f"{key} {found.get(key)} (the model's: {expected[key]})"
        for key in sorted(expected)
        if key in found and found[key] != expected[key]
    ]


@torch.no_grad()
def content_embeddings(model: Ranker, store: TokenStore, rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """Target-side and history-side content embeddings (N, E) of the store rows ``rows``, as the model computes
    them in eval mode (nothing for a model without content)."""
    if not model.uses_content:
        return {}
    device = next(model.parameters()).device
    tokens = model.content_inputs.target == "tokens"
    target, history = [torch.zeros(0, model.cfg.embed_dim)], [torch.zeros(0, model.cfg.embed_dim)]
    for start in range(0, len(rows), NO_GRAD_CHUNK):
        part = rows[start : start + NO_GRAD_CHUNK]
        content = store.gather(part, tokens=tokens).to(device)
        target.append(model.content(content).float().cpu())
        if isinstance(model.history_content, HistoryContent):
            history.append(model.history_content(part.to(device), content).float().cpu())
        else:
            history.append(model.history_content(content).float().cpu())
    return {"target": torch.cat(target), "history": torch.cat(history)}


def build_catalogue(model: Ranker, cfg: Config) -> Catalogue:
    """The catalogue of ``model`` trained with ``cfg`` (``data.source: tables``: its tables and token store)."""
    from em3.data.loading import load_data

    if cfg.data.source != "tables":
        raise ServingError(
            f"{cfg.name} trained on data.source {cfg.data.source!r}: only models trained on tables "
            "(ingest + features) have item and user ids to serve"
        )
    data = load_data(cfg)
    if data.store.n_rows != model.shapes.n_items:
        raise ServingError(
            f"the token store {cfg.data.store_dir} has {data.store.n_rows - 1} items but the model was trained on "
            f"{model.shapes.n_items - 1}: give the store it was trained on"
        )
    table = read_interactions(Path(cfg.data.tables_dir)).to_pandas()
    split = SplitRule.of_config(cfg.data).codes(table["ts"].to_numpy())
    order = np.argsort(split, kind="stable")
    frame = table.iloc[order[split[order] >= 0]]  # the row order of the splits (rows before the window in none)
    splits = [getattr(data, name) for name in SPLITS]
    user = torch.cat([split.user for split in splits]).numpy()
    context = torch.cat([split.context for split in splits]).numpy()
    numeric = torch.cat([split.numeric for split in splits]).numpy()
    names = data.inputs.get("context", [])
    if not all(name.startswith(USER_PREFIX) for name in data.inputs.get("numeric", [])):
        raise ServingError(f"numeric inputs {data.inputs['numeric']} are not all user attributes: cannot serve them")

    first = np.unique(user, return_index=True)[1]  # one row per user index of the splits
    users = np.array(["", *data.user_ids], dtype=object)  # every user, those only before the window too
    user_fields = [f for f, name in enumerate(names) if name.startswith(USER_PREFIX)]
    user_context = np.zeros((data.n_users, len(user_fields)), np.int64)
    user_context[user[first]] = context[first][:, user_fields]
    user_numeric = np.zeros((data.n_users, numeric.shape[1]), np.float32)
    user_numeric[user[first]] = numeric[first]
    row_codes = {
        name: dict(zip(frame[name].astype(str), context[:, f].tolist(), strict=True))
        for f, name in enumerate(names)
        if not name.startswith(USER_PREFIX)
    }

    rule = data.inputs.get("history", "earlier_days")
    positives = table[table["label"] == 1]  # in the table's order, as training meets them (ties keep it)
    time, _ = history_time(positives["ts"], rule)
    user_index = pd.Series(np.arange(1, data.n_users), index=users[1:])
    tensors = {
        "user_context": torch.from_numpy(user_context),
        "user_numeric": torch.from_numpy(user_numeric),
        "positives.user": torch.tensor(positives["user_id"].map(user_index).to_numpy(np.int64)),  # copies: pandas
        "positives.time": torch.tensor(time),  # hands out read-only arrays
        "positives.item": torch.tensor(positives["item_id"].map(data.store.index()).to_numpy(np.int64)),
    }
    content = content_embeddings(model, data.store, torch.arange(data.store.n_rows))
    tensors |= {f"content.{name}": value for name, value in content.items()}
    if model.use_similarity:  # the frozen-content space its history-similarity inputs are measured in
        from em3.data.content_similarity import unit_content

        tensors["unit_content"] = unit_content(data.store)[torch.arange(data.store.n_rows)]  # the whole table
    return Catalogue(
        item_ids=list(data.store.item_ids),
        user_ids=users[1:].astype(str).tolist(),
        context=list(names),
        row_codes=row_codes,
        history_rule=rule,
        max_history=cfg.data.max_history,
        features=store_features(data.store, Path(cfg.data.store_dir)),
        tensors=tensors,
    )
