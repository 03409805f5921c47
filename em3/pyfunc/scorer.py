"""Score impressions (``user_id, item_id, ts`` and the context columns of the data contract) with a trained model and
its catalogue (em3.pyfunc.catalogue).

A known item is its trained ID embedding next to its catalogue content embedding. An item the model never saw gets a
content embedding computed from its tokens in a token store of new items (written by ``em3 features``; its feature
settings must be the model's) and the ID embedding that training gave the catalogue items it never showed: the
content -> ID map saved with the model (``Ranker.id_from_content``; the neutral ID, zeros, for a model trained
without it); without tokens for it, the row is refused. An unknown user gets the neutral user (index 0, zero
attributes) and an empty history; a known user's history is built from the training positives before the row's time,
with training's rule (em3.data.history). A malformed row is refused with a reason instead of failing the batch.

Item vectors are computed once per item, so a row costs one pass of the backbone: ``Ranker.forward`` in eval mode
with the per-item parts looked up instead of recomputed per batch (tests/serving compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from em3.data.content_similarity import cosine_summary, store_unit_vectors
from em3.data.history import earlier_histories, history_time
from em3.data.tables import USER_PREFIX
from em3.data.token_store import TokenStore
from em3.models.ranker import Ranker
from em3.pyfunc.catalogue import Catalogue, ServingError, content_embeddings, feature_mismatch, store_features

REQUIRED = ("user_id", "item_id", "ts")
MAX_CONTEXT_VALUE = 9999  # the data contract's small integers (sales_channel_id)


@dataclass
class Scores:
    """Per input row: the click probability (NaN where refused), the refusal reason ("" where scored), whether
    the item was new to the model (scored from its content) and whether the user was known."""

    score: np.ndarray
    reason: np.ndarray
    cold_item: np.ndarray
    known_user: np.ndarray


class Scorer:
    def __init__(self, model: Ranker, catalogue: Catalogue, batch_size: int = 4096):
        self.model, self.catalogue, self.batch_size = model.eval(), catalogue, batch_size
        self.device = next(model.parameters()).device
        self.items = pd.Index(catalogue.item_ids)
        self.users = pd.Index(catalogue.user_ids)
        tensors = catalogue.tensors
        with torch.no_grad():
            ids = model.item_embed.weight.detach()
            if model.uses_content:
                self.targets = torch.cat([ids, tensors["content.target"].to(self.device)], -1)  # (n_items, D)
                self.histories = torch.cat([ids, tensors["content.history"].to(self.device)], -1)
            else:
                self.targets = self.histories = ids
        self.user_context = tensors["user_context"].numpy()
        self.user_numeric = tensors["user_numeric"].to(self.device)
        order = torch.argsort(tensors["positives.user"], stable=True).numpy()  # by user; table order within one
        self.positives = {name: tensors[f"positives.{name}"].numpy()[order] for name in ("user", "time", "item")}
        self.unit = tensors["unit_content"].to(self.device) if model.use_similarity else None
        self.store: TokenStore | None = None
        self.store_dir: str | None = None
        self.cold: dict[str, torch.Tensor] = {}  # item id -> target vector of a new item, computed once
        self.cold_unit: dict[str, torch.Tensor] = {}  # item id -> its unit frozen content (history_similarity)

    def use_store(self, store_dir: str | Path | None) -> None:
        """Take the content of new items from the token store at ``store_dir`` (None: keep the current one)."""
        if not store_dir or str(store_dir) == self.store_dir:
            return
        store = TokenStore.load(store_dir)
        mismatch = feature_mismatch(self.catalogue.features, store_features(store, Path(store_dir)))
        if mismatch:
            raise ServingError(
                f"token store {store_dir} does not match the model's feature settings: {'; '.join(mismatch)}; "
                "encode the new items with the features settings the model was trained with"
            )
        self.store, self.store_dir, self.cold, self.cold_unit = store, str(store_dir), {}, {}

    def score(self, frame: pd.DataFrame) -> Scores:
        """Scores of the rows of ``frame`` (columns REQUIRED, optionally the log's context columns)."""
        reason = np.full(len(frame), "", dtype=object)
        user_id = self._ids(frame, "user_id", reason)
        item_id = self._ids(frame, "item_id", reason)
        ts = self._times(frame["ts"], reason)
        row_context = {name: self._row_codes(frame, name, reason) for name in self.catalogue.row_codes}
        item = self.items.get_indexer(item_id) + 1  # 0: not in the catalogue
        user = self.users.get_indexer(user_id) + 1  # 0: unknown user
        cold = (item == 0) & (reason == "")
        cold_vectors = self._cold_vectors(item_id, cold, reason)
        ok = reason == ""
        score = np.full(len(frame), np.nan)
        if ok.any():
            context = self._context(user[ok], {name: codes[ok] for name, codes in row_context.items()})
            score[ok] = self._forward(user[ok], item[ok], ts[ok], context, cold_vectors, cold[ok], item_id[ok])
        return Scores(score, reason, cold & ok, (user > 0) & ok)

    @staticmethod
    def _ids(frame: pd.DataFrame, column: str, reason: np.ndarray) -> np.ndarray:
        values = frame[column].astype("string").str.strip().fillna("").to_numpy(dtype=object)
        _refuse(reason, values == "", f"{column}: missing")
        return values

    @staticmethod
    def _times(ts: pd.Series, reason: np.ndarray) -> pd.Series:
        """ISO 8601 dates or times, in UTC without zone (as ingest reads ts); unparsable ones refused."""
        if pd.api.types.is_datetime64_any_dtype(ts):
            parsed = pd.to_datetime(ts, utc=True)
        else:
            parsed = pd.to_datetime(ts.astype("string"), format="ISO8601", errors="coerce", utc=True)
        bad = parsed.isna().to_numpy()
        _refuse(reason, bad, "ts: not an ISO 8601 date or time")
        return parsed.dt.tz_localize(None).fillna(pd.Timestamp(0)).reset_index(drop=True)

    def _row_codes(self, frame: pd.DataFrame, column: str, reason: np.ndarray) -> np.ndarray:
        """Training's code of each row's value (0: unseen); a log without the column has 0 there, as in ingest."""
        if column not in frame:
            return np.full(len(frame), self.catalogue.row_codes[column].get("0", 0), np.int64)
        numbers = pd.to_numeric(frame[column].astype("string").str.strip(), errors="coerce").to_numpy(float)
        bad = ~np.isfinite(numbers) | (numbers != np.round(numbers)) | (numbers < 0) | (numbers > MAX_CONTEXT_VALUE)
        _refuse(reason, bad, f"{column}: not an integer 0-{MAX_CONTEXT_VALUE}")
        values = pd.Series(np.where(bad, 0, numbers).astype(np.int64)).astype(str)
        return values.map(self.catalogue.row_codes[column]).fillna(0).to_numpy(np.int64)

    def _context(self, user: np.ndarray, row_context: dict[str, np.ndarray]) -> np.ndarray:
        """(N, F) categorical context in the model's field order: user attributes by user, log columns by row."""
        fields, user_field = [], 0
        for name in self.catalogue.context:
            if name.startswith(USER_PREFIX):
                fields.append(self.user_context[user, user_field])
                user_field += 1
            else:
                fields.append(row_context[name])
        return np.stack(fields, axis=1) if fields else np.zeros((len(user), 0), np.int64)

    def _cold_vectors(self, item_id: np.ndarray, cold: np.ndarray, reason: np.ndarray) -> torch.Tensor:
        """Target vectors of the cold rows (in row order): the ID from content + content from the store of new items."""
        width = self.targets.shape[1]
        if not self.model.uses_content:  # an ID-only model scores a new item by the neutral ID alone
            return torch.zeros(int(cold.sum()), width, device=self.device)
        new = [key for key in pd.unique(item_id[cold]) if key not in self.cold]
        rows = self.store.index() if self.store is not None and new else {}
        found = [key for key in new if key in rows]
        if found:
            store_rows = torch.tensor([rows[key] for key in found])
            content = content_embeddings(self.model, self.store, store_rows)
            ids = self.model.id_from_content(content["target"].to(self.device)).cpu()  # as training filled unseen items
            self.cold.update(zip(found, torch.cat([ids, content["target"]], -1).to(self.device), strict=True))
            if self.unit is not None:
                unit = store_unit_vectors(self.store, store_rows.numpy())
                self.cold_unit.update(zip(found, unit.to(self.device), strict=True))
        missing = cold & ~pd.Series(item_id).isin(self.cold.keys()).to_numpy()
        where = "the token store of new items" if self.store is not None else "any token store (none was given)"
        _refuse(reason, missing, f"item_id: not in the model's catalogue and no content for it in {where}")
        kept = item_id[cold & ~missing]
        return torch.stack([self.cold[key] for key in kept]) if len(kept) else torch.zeros(0, width, device=self.device)

    @torch.no_grad()
    def _forward(
        self, user, item, ts: pd.Series, context, cold_vectors: torch.Tensor, cold: np.ndarray, cold_ids: np.ndarray
    ) -> np.ndarray:
        history = self._histories(user, ts)
        model, device = self.model, self.device
        cold_position = np.cumsum(cold) - 1  # row -> its vector in cold_vectors
        logits = []
        for start in range(0, len(user), self.batch_size):
            part = slice(start, start + self.batch_size)
            users, items = torch.from_numpy(user[part]).to(device), torch.from_numpy(item[part]).to(device)
            target = self.targets[items]
            rows_cold = torch.from_numpy(cold[part]).to(device)
            if cold[part].any():
                target[rows_cold] = cold_vectors[torch.from_numpy(cold_position[part][cold[part]]).to(device)]
            past = torch.from_numpy(history[part]).to(device)
            similarity = self._similarity(items, rows_cold, cold_ids[part], past) if self.unit is not None else None
            contexts = torch.from_numpy(context[part]).to(device)
            logits.append(
                model.score(users, target, self.histories[past], past, contexts, self.user_numeric[users], similarity)
                .float()
                .cpu()
            )
        return torch.sigmoid(torch.cat(logits)).double().numpy()

    def _similarity(self, items: torch.Tensor, cold: torch.Tensor, cold_ids: np.ndarray, past: torch.Tensor):
        """(B, 2) raw history-similarity inputs (em3.data.content_similarity; the model standardises them), new
        items from their frozen content."""
        target = self.unit[items]
        if cold.any():
            target[cold] = torch.stack([self.cold_unit[key] for key in cold_ids[cold.cpu().numpy()]])
        cosine = torch.einsum("bd,bld->bl", target.float(), self.unit[past].float())  # (B, L)
        return cosine_summary(cosine, past)

    def _histories(self, user: np.ndarray, ts: pd.Series) -> np.ndarray:
        """(N, max_history) item rows: the user's training positives before the row's time, most recent first."""
        time, _ = history_time(ts, self.catalogue.history_rule)
        sorted_users = self.positives["user"]
        known = np.unique(user[user > 0])
        starts, ends = np.searchsorted(sorted_users, known), np.searchsorted(sorted_users, known, side="right")
        picked = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)] or [np.zeros(0, int)])
        n = len(picked)
        history = earlier_histories(
            np.concatenate([sorted_users[picked], user]),
            np.concatenate([self.positives["time"][picked], time]),
            np.concatenate([self.positives["item"][picked], np.zeros(len(user), np.int64)]),
            np.concatenate([np.ones(n, np.int64), np.zeros(len(user), np.int64)]),
            self.catalogue.max_history,
        )
        return history[n:]


def _refuse(reason: np.ndarray, rows: np.ndarray, why: str) -> None:
    """Give ``why`` to the rows not refused yet (a row keeps its first reason)."""
    reason[rows & (reason == "")] = why
