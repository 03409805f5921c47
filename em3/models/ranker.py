"""The ranking model: ID embeddings, an optional content tower, a backbone, and the click and CIC losses.

Variants (DESIGN §3): ``id_only`` (IDs and context only), ``two_stage`` (+ frozen pooled content through a trainable
projection), ``em3`` (+ FQ-Former over the item tokens trained end-to-end, a LoRA history branch, CIC).
An item is represented as [ID embedding ; content embedding].
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from em3.config import ModelConfig
from em3.data.content_similarity import SIMILARITY_FEATURES
from em3.data.dataset import Batch, ContentInputs
from em3.data.token_store import ItemContent, TokenStore
from em3.errors import DataError
from em3.layers import FieldEmbeddings
from em3.losses import cic_loss, coengagement_loss, neighbourhood_loss
from em3.models.backbones import BACKBONES
from em3.models.content import PooledContent, TokenContent, drop_modalities, frozen_space
from em3.models.history import HistoryContent


@dataclass(frozen=True)
class ModelShapes:
    """What the model needs to know about the data: vocabulary sizes and content widths."""

    n_users: int
    n_items: int
    context_cardinalities: tuple[int, ...]
    image_dim: int  # 0: no item of the catalogue has an image (the modality is absent)
    text_dim: int  # 0: no item has a text
    pooled_dim: int
    numeric_dim: int = 0  # numeric context inputs (standardised values and missing flags)


class Ranker(nn.Module):
    def __init__(self, cfg: ModelConfig, shapes: ModelShapes):
        super().__init__()
        self.cfg = cfg
        self.shapes = shapes
        dim = cfg.embed_dim
        self.user_embed = nn.Embedding(shapes.n_users, dim, padding_idx=0)
        self.item_embed = nn.Embedding(shapes.n_items, dim, padding_idx=0)
        self.context_embed = FieldEmbeddings(shapes.context_cardinalities, dim)
        self.content: nn.Module | None = None
        self.history_content: nn.Module | None = None
        if cfg.variant != "id_only" and not (shapes.image_dim or shapes.text_dim):
            raise DataError(
                f"model.variant {cfg.variant} needs item content; the token store has neither images nor "
                "texts (use model.variant: id_only)"
            )
        if cfg.variant == "two_stage":
            mlp = cfg.pooled_projection == "mlp"
            self.content = PooledContent(shapes.image_dim, shapes.text_dim, dim, mlp)
            self.history_content = self.content
        elif cfg.variant == "em3":
            cache = cfg.content_cache_every > 0
            self.content = TokenContent(shapes.image_dim, shapes.text_dim, cfg, shapes.n_items, cache)
            self.history_content = HistoryContent(self.content, cfg.history_mode, cfg.lora, cfg.content_cache_every)
        self.use_cic = cfg.variant == "em3" and cfg.cic_weight > 0
        self.use_coengagement = self.content is not None and cfg.coengagement_loss_weight > 0
        self.use_neighbourhood = self.content is not None and cfg.neighbourhood_loss_weight > 0
        if self.use_cic:
            self.cic_content_head = nn.Linear(dim, cfg.cic_dim)
            self.cic_id_head = nn.Linear(dim, cfg.cic_dim)
        item_dim = dim * (2 if self.content is not None else 1)
        if self.content is not None:  # content -> ID map for items training never showed (em3.models.item_tables)
            self.register_buffer("content_to_id", torch.zeros(dim + 1, dim))  # (E + 1, E), bias last; 0: neutral
        self.use_similarity = self.content is not None and cfg.history_similarity
        if self.use_similarity:  # standardisation of the similarity inputs, set from the training rows; saved
            self.register_buffer("similarity_mean", torch.zeros(len(SIMILARITY_FEATURES)))
            self.register_buffer("similarity_std", torch.ones(len(SIMILARITY_FEATURES)))
        context_dim = self.context_embed.out_dim + shapes.numeric_dim
        context_dim += len(SIMILARITY_FEATURES) if self.use_similarity else 0
        self.backbone = BACKBONES[cfg.backbone](cfg, dim, item_dim, context_dim)
        for table in (self.user_embed, self.item_embed, *self.context_embed.tables):
            nn.init.normal_(table.weight, std=0.05)  # small: unseen (cold) IDs stay close to neutral
            table.weight.data[0].zero_()

    @torch.no_grad()
    def set_similarity_scaling(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardise the similarity inputs with these training-row statistics (2,) each (saved with the model)."""
        self.similarity_mean.copy_(mean)
        self.similarity_std.copy_(std)

    def standardise_similarity(self, similarity: torch.Tensor) -> torch.Tensor:
        """The similarity inputs (B, 2) as the backbone reads them: standardised with the training statistics."""
        return (similarity - self.similarity_mean) / self.similarity_std

    @property
    def id_tables(self) -> tuple[nn.Embedding, nn.Embedding]:
        """The tables that grow with the log (users, items): what ``train.id_table_updates: rows`` updates lazily."""
        return self.user_embed, self.item_embed

    @property
    def uses_content(self) -> bool:
        return self.content is not None

    @property
    def content_inputs(self) -> ContentInputs:
        """What ``make_batch`` must gather for a training step."""
        similarity = self.use_similarity
        if isinstance(self.content, PooledContent):
            return ContentInputs("pooled", "pooled", similarity)
        if isinstance(self.history_content, HistoryContent):
            return ContentInputs("tokens", None if self.history_content.cache_every else "tokens", similarity)
        return ContentInputs()

    @property
    def prediction_inputs(self) -> ContentInputs:
        """What ``make_batch`` must gather for prediction (no content when a refreshed cache holds every item)."""
        return ContentInputs(similarity=self.use_similarity) if self.has_content_cache else self.content_inputs

    @property
    def has_content_cache(self) -> bool:
        return isinstance(self.content, TokenContent) and self.content.has_cache

    @property
    def content_cache_every(self) -> int:
        """Training steps between cache refreshes (0: training does not read the cache)."""
        history = self.history_content
        return history.cache_every if isinstance(history, HistoryContent) else 0

    def resume_content_cache(self, store: TokenStore) -> None:
        """After a checkpoint restored the cache: read from ``store`` without refreshing (exact resume)."""
        if self.has_content_cache:
            self.content.cache.binding.resume(store)

    def refresh_content_cache(self, store: TokenStore) -> None:
        """Recompute the per-item content cache from the current weights (a no-op for models without one)."""
        if self.has_content_cache:
            self.content.refresh(store)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Click logits (B,) and named losses; ``losses["loss"]`` is what training minimises."""
        full_target_content = batch.target_content  # before modality dropout: the frozen neighbourhoods kept
        if self.training and self.cfg.modality_dropout and batch.target_content is not None:
            dims = (self.shapes.image_dim, self.shapes.text_dim)
            rate, text_share = self.cfg.modality_dropout, self.cfg.modality_dropout_text_share
            dropped = drop_modalities(batch.target_content, rate, dims, text_share=text_share)
            batch = replace(batch, target_content=dropped)
        target_id = self.item_embed(batch.item)  # (B, E)
        target, history = target_id, self.item_embed(batch.history)  # (B, E), (B, L, E)
        if self.content is not None:
            unique_target_content = self._target_content(batch)  # (Ut, E)
            target_content = unique_target_content[batch.target_pos]  # (B, E)
            history_content = self._history_content(batch)[batch.history_pos]  # (B, L, E)
            target = torch.cat([target_id, target_content], dim=-1)  # (B, 2E)
            history = torch.cat([history, history_content], dim=-1)  # (B, L, 2E)
        if self.use_similarity and batch.similarity is None:
            raise ValueError(
                "this model reads the history's content similarity: build its batches with "
                "the model's content_inputs (em3.data.dataset.make_batch)"
            )
        logits = self.score(batch.user, target, history, batch.history, batch.context, batch.numeric, batch.similarity)
        losses = {"bce": F.binary_cross_entropy_with_logits(logits.float(), batch.label)}
        loss = losses["bce"]
        if self.use_cic:
            losses["cic"] = cic_loss(
                self.cic_content_head(target_content),
                self.cic_id_head(target_id),
                batch.item,
                self.cfg.cic_temperature,
            )
            loss = loss + self.cfg.cic_weight * losses["cic"]
        if self.use_coengagement:
            losses["coengagement"] = self._coengagement(batch, target_content, history_content)
            loss = loss + self.cfg.coengagement_loss_weight * losses["coengagement"]
        # a prediction batch of a model with a content cache carries no content: there is nothing to keep
        if self.use_neighbourhood and full_target_content is not None:
            dims = (self.shapes.image_dim, self.shapes.text_dim)
            frozen = frozen_space(full_target_content, dims)  # (Ut, d_img + d_txt)
            losses["neighbourhood"] = neighbourhood_loss(
                unique_target_content, frozen, self.cfg.neighbourhood_temperature
            )
            loss = loss + self.cfg.neighbourhood_loss_weight * losses["neighbourhood"]
        losses["loss"] = loss
        return logits, losses

    def score(
        self,
        user: torch.Tensor,
        target: torch.Tensor,
        history: torch.Tensor,
        history_items: torch.Tensor,
        context: torch.Tensor,
        numeric: torch.Tensor,
        similarity: torch.Tensor | None,
    ) -> torch.Tensor:
        """Click logits (B,) from the item vectors: the target's (B, D) and the history's (B, L, D) of the item rows
        ``history_items`` (B, L; 0 = padding), context codes (B, C), numeric inputs (B, N) and the raw history
        similarity (B, 2; read only by models that use it)."""
        inputs = [self.context_embed(context), numeric]
        if self.use_similarity:
            inputs.append(self.standardise_similarity(similarity))  # (B, 2)
        return self.backbone(self.user_embed(user), target, history, history_items != 0, torch.cat(inputs, -1))

    def _coengagement(self, batch: Batch, content: torch.Tensor, history_content: torch.Tensor) -> torch.Tensor:
        """The co-engagement loss of the batch's positive rows: each target's content (B, E) paired with that of
        each of the user's ``coengagement_window`` latest earlier positives, the first history items
        (history_content: (B, L, E)); empty slots and the target's own item are left out."""
        window = min(self.cfg.coengagement_window, batch.history.shape[1])
        earlier = batch.history[:, :window]  # (B, W) latest first, 0 = none
        pairs = (batch.label > 0)[:, None] & (earlier != 0) & (earlier != batch.item[:, None])  # (B, W)
        row, slot = pairs.nonzero(as_tuple=True)  # (P,) each
        return coengagement_loss(
            content[row],
            history_content[row, slot],
            batch.item[row],
            earlier[row, slot],
            self.cfg.coengagement_temperature,
        )

    def _target_content(self, batch: Batch) -> torch.Tensor:
        if isinstance(self.content, TokenContent):
            return self.content.head(self.content.fused(batch.target_items, batch.target_content))  # (Ut, E)
        return self.content(batch.target_content)

    def _history_content(self, batch: Batch) -> torch.Tensor:
        if isinstance(self.history_content, HistoryContent):
            return self.history_content(batch.history_items, batch.history_content)  # (Uh, E)
        return self.history_content(batch.history_content)

    def id_from_content(self, content: torch.Tensor) -> torch.Tensor:
        """The ID embedding (N, E) that the content embeddings ``content`` (N, E) of items training never showed
        map to: training's ridge map when it filled such items, else the neutral ID (zeros)."""
        return content @ self.content_to_id[:-1] + self.content_to_id[-1]

    @torch.no_grad()
    def item_embeddings(self, items: torch.Tensor, content: ItemContent | None) -> dict[str, torch.Tensor]:
        """ID and (if any) content embeddings of the given item rows, for similarity metrics and retrieval."""
        result = {"id": self.item_embed(items)}
        if self.content is not None:
            result["content"] = self.content(content)
        return result

    def parameter_counts(self) -> dict[str, int]:
        history = self.history_content
        if isinstance(history, HistoryContent):
            history_trainable = history.trainable_parameters()
        else:
            history_trainable = sum(p.numel() for p in history.parameters()) if history is not None else 0
        return {
            "total": sum(p.numel() for p in self.parameters()),
            "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "history_content_trainable": history_trainable,
        }
