"""The per-item content store: frozen-encoder tokens, masks and pooled vectors, memory-mapped from disk.

Row 0 is reserved for "no item" (padding and unknown ids): its masks are all False, so every model sees it as an
item without content. Row ``i + 1`` holds ``item_ids[i]``. Training never runs the encoders; it gathers rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from em3.atomic import staged_dir

INDEX = "index.json"
ARRAYS = ("image_tokens", "image_mask", "text_tokens", "text_mask", "pooled_image", "pooled_text")


@dataclass
class ItemContent:
    """Content of a batch of items, as float32/bool tensors ready for the model."""

    image_tokens: torch.Tensor  # (..., T_img, d_img)
    image_mask: torch.Tensor  # (..., T_img) True = real token
    text_tokens: torch.Tensor  # (..., T_txt, d_txt)
    text_mask: torch.Tensor  # (..., T_txt)
    pooled: torch.Tensor  # (..., d_img + d_txt) frozen pooled features, zeros where a modality is missing

    def __getitem__(self, index: slice | torch.Tensor) -> ItemContent:
        """The content of a subset of the items (along the first dimension)."""
        return ItemContent(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    def to(self, device: torch.device | str) -> ItemContent:
        return ItemContent(*(getattr(self, f).to(device, non_blocking=True) for f in self.__dataclass_fields__))


@dataclass
class TokenStore:
    """Per-item encoder outputs; arrays are numpy (possibly memory-mapped), rows aligned with item indices."""

    item_ids: list[str]
    image_tokens: np.ndarray  # (n_rows, T_img, d_img) float16
    image_mask: np.ndarray  # (n_rows, T_img) bool
    text_tokens: np.ndarray  # (n_rows, T_txt, d_txt) float16
    text_mask: np.ndarray  # (n_rows, T_txt) bool
    pooled_image: np.ndarray  # (n_rows, d_img) float16
    pooled_text: np.ndarray  # (n_rows, d_txt) float16
    content_hashes: list[str] | None = None

    def __post_init__(self) -> None:
        n_rows = len(self.item_ids) + 1
        for name in ARRAYS:
            array = getattr(self, name)
            if array.shape[0] != n_rows:
                raise ValueError(
                    f"token store array {name!r} has {array.shape[0]} rows; expected {n_rows} "
                    f"({len(self.item_ids)} items + the padding row 0)"
                )
        if self.image_mask[0].any() or self.text_mask[0].any():
            raise ValueError("token store row 0 is the padding item and must have no content (masks all False)")

    @property
    def n_rows(self) -> int:
        return len(self.item_ids) + 1

    @property
    def image_dim(self) -> int:
        return self.image_tokens.shape[-1]

    @property
    def text_dim(self) -> int:
        return self.text_tokens.shape[-1]

    @property
    def pooled_dim(self) -> int:
        return self.pooled_image.shape[-1] + self.pooled_text.shape[-1]

    def index(self) -> dict[str, int]:
        """Map item id -> row."""
        return {item_id: row + 1 for row, item_id in enumerate(self.item_ids)}

    def gather(self, rows: torch.Tensor) -> ItemContent:
        """Content of the given rows (any shape of int tensor), read from the (memory-mapped) arrays."""
        flat = rows.reshape(-1).cpu().numpy()

        def take(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            values = torch.from_numpy(np.ascontiguousarray(array[flat])).to(dtype)
            return values.reshape(*rows.shape, *array.shape[1:])

        pooled = np.concatenate([self.pooled_image[flat], self.pooled_text[flat]], axis=-1)
        return ItemContent(
            image_tokens=take(self.image_tokens, torch.float32),
            image_mask=take(self.image_mask, torch.bool),
            text_tokens=take(self.text_tokens, torch.float32),
            text_mask=take(self.text_mask, torch.bool),
            pooled=torch.from_numpy(pooled).float().reshape(*rows.shape, pooled.shape[-1]),
        )

    def save(self, directory: str | Path) -> Path:
        """Write atomically: a crash never leaves a complete-looking partial store."""
        directory = Path(directory)
        with staged_dir(directory, INDEX) as staging:
            for name in ARRAYS:
                np.save(staging / f"{name}.npy", getattr(self, name))
            index = {"item_ids": self.item_ids, "content_hashes": self.content_hashes}
            (staging / INDEX).write_text(json.dumps(index))
        return directory

    @classmethod
    def load(cls, directory: str | Path, mmap: bool = True) -> TokenStore:
        directory = Path(directory)
        index_file = directory / INDEX
        if not index_file.exists():
            raise FileNotFoundError(f"{directory} is not a token store (no index.json); run `em3 features` first")
        index = json.loads(index_file.read_text())
        arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r" if mmap else None) for name in ARRAYS}
        return cls(item_ids=index["item_ids"], content_hashes=index.get("content_hashes"), **arrays)
