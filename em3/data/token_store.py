"""The per-item content store: frozen-encoder tokens, masks and pooled vectors, memory-mapped from disk.

Row 0 is reserved for "no item" (padding and unknown ids): its masks are all False, so every model sees it as an
item without content. Row ``i + 1`` holds ``item_ids[i]``. Training never runs the encoders; it gathers rows.
A modality no item of the catalogue has (a text-only log has no photos) is stored with zero tokens of width zero:
its arrays are (n_rows, 0, 0), (n_rows, 0) and (n_rows, 0), so ``image_dim`` / ``text_dim`` 0 tells the model
that the modality is absent and builds no part for it.
A loaded store gathers rows with positioned file reads (em3.data.mapped.RowFiles), not through its mappings, so
reading all of it, however large, does not grow the process's RSS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from em3.atomic import staged_dir
from em3.data.mapped import RowFiles

INDEX = "index.json"
ARRAYS = ("image_tokens", "image_mask", "text_tokens", "text_mask", "pooled_image", "pooled_text")


@dataclass
class ItemContent:
    """Content of a batch of items, as float32/bool tensors ready for the model (tokens None when only pooled
    vectors were gathered)."""

    image_tokens: torch.Tensor | None  # (..., T_img, d_img)
    image_mask: torch.Tensor | None  # (..., T_img) True = real token
    text_tokens: torch.Tensor | None  # (..., T_txt, d_txt)
    text_mask: torch.Tensor | None  # (..., T_txt)
    pooled: torch.Tensor  # (..., d_img + d_txt) frozen pooled features, zeros where a modality is missing
    present: torch.Tensor  # (..., 2) bool: the item has an image, a text (its pooled vector is not all zeros)

    def __getitem__(self, index: slice | torch.Tensor) -> ItemContent:
        """The content of a subset of the items (along the first dimension)."""
        return ItemContent(*(_apply(getattr(self, f), lambda t: t[index]) for f in self.__dataclass_fields__))

    def to(self, device: torch.device | str) -> ItemContent:
        moved = (_apply(getattr(self, f), lambda t: t.to(device, non_blocking=True)) for f in self.__dataclass_fields__)
        return ItemContent(*moved)


def _apply(value: torch.Tensor | None, fn) -> torch.Tensor | None:
    return None if value is None else fn(value)


@dataclass
class TokenStore:
    """Per-item encoder outputs; arrays are numpy (possibly memory-mapped), rows aligned with item indices."""

    item_ids: list[str]
    image_tokens: np.ndarray  # (n_rows, T_img, d_img) float16
    image_mask: np.ndarray  # (n_rows, T_img) bool
    text_tokens: np.ndarray  # (n_rows, T_txt, d_txt) float16
    text_mask: np.ndarray  # (n_rows, T_txt) bool
    pooled_image: np.ndarray  # (n_rows, d_img) float16, exactly zero where the item has no image
    pooled_text: np.ndarray  # (n_rows, d_txt) float16, exactly zero where the item has no text
    content_hashes: list[str] | None = None
    files: RowFiles | None = field(default=None, repr=False, compare=False)  # the arrays' files, when loaded

    def __post_init__(self) -> None:
        n_rows = len(self.item_ids) + 1
        for name in ARRAYS:
            array = getattr(self, name)
            if array.shape[0] != n_rows:
                raise ValueError(
                    f"token store array {name!r} has {array.shape[0]} rows; expected {n_rows} "
                    f"({len(self.item_ids)} items + the padding row 0)"
                )
        for name in ("image", "text"):
            tokens, pooled = getattr(self, f"{name}_tokens"), getattr(self, f"pooled_{name}")
            if tokens.shape[-1] != pooled.shape[-1]:
                raise ValueError(
                    f"token store: {name} tokens are {tokens.shape[-1]}-d but pooled_{name} is "
                    f"{pooled.shape[-1]}-d; both come from the same encoder"
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

    @property
    def modalities(self) -> dict[str, bool]:
        """Which modalities the store holds at all (a text-only catalogue stores no image arrays)."""
        return {"image": self.image_dim > 0, "text": self.text_dim > 0}

    def index(self) -> dict[str, int]:
        """Map item id -> row."""
        return {item_id: row + 1 for row, item_id in enumerate(self.item_ids)}

    def gather(self, rows: torch.Tensor, tokens: bool = True) -> ItemContent:
        """Content of the given rows (any shape of int tensor), read from the store's files (``read_rows``); with
        ``tokens=False`` only the pooled vectors (a fraction of the bytes). ``present`` comes from the masks when
        they are read, else from the pooled vectors, which the store holds as exact zeros where a modality is
        missing (reading the masks too, at one positioned read per row, would double a pooled-only gather's cost)."""
        flat = rows.reshape(-1).cpu().numpy()

        def take(name: str, dtype: torch.dtype) -> torch.Tensor | None:
            if not tokens:
                return None
            values = torch.from_numpy(np.ascontiguousarray(self.read_rows(name, flat))).to(dtype)
            return values.reshape(*rows.shape, *getattr(self, name).shape[1:])

        parts = self.read_rows("pooled_image", flat), self.read_rows("pooled_text", flat)
        pooled = np.concatenate(parts, axis=-1)
        masks = take("image_mask", torch.bool), take("text_mask", torch.bool)
        if tokens:
            present = torch.stack([mask.any(-1) for mask in masks], dim=-1)
        else:
            present = torch.from_numpy(np.stack([nonzero_rows(part) for part in parts], -1)).reshape(*rows.shape, 2)
        return ItemContent(
            image_tokens=take("image_tokens", torch.float32),
            image_mask=masks[0],
            text_tokens=take("text_tokens", torch.float32),
            text_mask=masks[1],
            pooled=torch.from_numpy(pooled).float().reshape(*rows.shape, pooled.shape[-1]),
            present=present,
        )

    def read_rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """``array[rows]`` of the array ``name`` (one of ``ARRAYS``), read from its file when the store was loaded."""
        return getattr(self, name)[rows] if self.files is None else self.files.read(name, rows)

    def save(self, directory: str | Path) -> Path:
        """Write atomically: a crash never leaves a complete-looking partial store."""
        directory = Path(directory)
        with staged_dir(directory, INDEX) as staging:
            for name in ARRAYS:
                np.save(staging / f"{name}.npy", getattr(self, name))
            write_index(staging, self.item_ids, self.content_hashes)
        return directory

    @classmethod
    def load(cls, directory: str | Path, mmap: bool = True) -> TokenStore:
        directory = Path(directory)
        index_file = directory / INDEX
        if not index_file.exists():
            raise FileNotFoundError(f"{directory} is not a token store (no index.json); run `em3 features` first")
        index = json.loads(index_file.read_text())
        arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r" if mmap else None) for name in ARRAYS}
        files = RowFiles() if mmap else None  # gathers read the files, not the mappings (em3.data.mapped)
        for name in ARRAYS if files else ():
            files.open(name, directory / f"{name}.npy")
        return cls(item_ids=index["item_ids"], content_hashes=index.get("content_hashes"), files=files, **arrays)


def nonzero_rows(values: np.ndarray) -> np.ndarray:
    """(n, d) -> (n,) bool: rows holding a non-zero value (-0.0 is zero); on float16 an integer test of the bits,
    ten times faster than comparing floats."""
    if values.dtype == np.float16:
        return (values.view(np.uint16) & 0x7FFF).any(-1)
    return (values != 0).any(-1)


def write_index(directory: Path, item_ids: list[str], content_hashes: list[str] | None) -> None:
    """The store's ``index.json``: item ids (row i + 1 = item_ids[i]) and per-item content hashes."""
    (directory / INDEX).write_text(json.dumps({"item_ids": item_ids, "content_hashes": content_hashes}))
