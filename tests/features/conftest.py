"""Fixtures for the features stage and the raw-layout synthetic generator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from em3.config import FeaturesConfig


@pytest.fixture
def features_cfg() -> FeaturesConfig:
    return FeaturesConfig(progress=False, batch_size=4, decode_workers=2, device="cpu")


def _write_photo(path: Path, colour: tuple[int, int, int], seed: int) -> Path:
    """A small JPEG: a coloured disc on a noisy background (noise makes the file large enough to truncate)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(150, 230, size=(64, 64, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:64, :64]
    pixels[(yy - 32) ** 2 + (xx - 32) ** 2 < 20**2] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    return path


@pytest.fixture
def write_photo() -> Callable[[Path, tuple[int, int, int], int], Path]:
    return _write_photo


@pytest.fixture
def catalogue(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    """Six items with distinct photos and texts, images under `tmp_path/images`."""
    root = tmp_path / "images"
    colours = [(200, 30, 40), (30, 45, 115), (240, 200, 40), (30, 105, 55), (25, 25, 25), (235, 140, 175)]
    texts = [
        "Red cotton T-shirt with short sleeves.",
        "Dark blue denim trousers with a zip fly.",
        "Yellow linen dress with a tie belt.",
        "Green wool jacket with a stand-up collar.",
        "Black silk skirt with a slit at the hem.",
        "Pink jersey top in a relaxed fit.",
    ]
    ids = [f"0{100000 + i:06d}001" for i in range(len(texts))]
    for item_id, colour, seed in zip(ids, colours, range(len(ids)), strict=True):
        _write_photo(root / item_id[:3] / f"{item_id}.jpg", colour, seed)
    items = pd.DataFrame({"item_id": ids, "text": texts, "image_path": [f"{i[:3]}/{i}.jpg" for i in ids]})
    return items, root
