"""The feature stage's cost for bench/speed.py: items/s of ``run_features`` (hash, decode, encode, write the store)
against a bare loop of the same encoders' forward passes over the same items, decoded and preprocessed beforehand,
at the same batch size."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from em3.config import FeaturesConfig

if TYPE_CHECKING:
    from transformers import BatchEncoding

    from em3.features.encoders import ImageEncoder, TextEncoder


COLOURS = ["black", "white", "navy", "red", "beige", "green", "pink", "grey", "yellow", "brown"]
GARMENTS = ["T-shirt", "dress", "jacket", "skirt", "jumper", "trousers", "shirt", "coat", "top", "shorts"]
DETAILS = [
    "short sleeves",
    "a round neckline",
    "a zip at the back",
    "side pockets",
    "a tie belt",
    "a relaxed fit",
    "buttons down the front",
    "a ribbed hem",
    "a high waist",
    "a printed pattern",
]


def feature_items(n: int, images: Path | None, workdir: Path) -> tuple[pd.DataFrame, Path]:
    """``n`` items with texts, and photos: the first ``n`` JPEGs under ``images``, else rendered 360×540 ones."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    if images is not None:
        paths = sorted(images.rglob("*.jpg"))[:n]
        if len(paths) < n:
            raise SystemExit(f"--images {images}: {len(paths)} JPEG files, {n} needed")
        root, relative = images, [str(path.relative_to(images)) for path in paths]
    else:
        root, relative = workdir / "images", [f"{i:04d}.jpg" for i in range(n)]
        root.mkdir(parents=True)
        for name in relative:
            pixels = rng.integers(200, 256, size=(540, 360, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            ImageDraw.Draw(image).rounded_rectangle((60, 80, 300, 480), radius=40, fill=colour)
            image.save(root / name, quality=90)
    texts = [
        f"{rng.choice(COLOURS).capitalize()} {rng.choice(GARMENTS)} with {rng.choice(DETAILS)} "
        f"and {rng.choice(DETAILS)}. " * int(rng.integers(1, 4))
        for _ in range(n)
    ]
    ids = [f"item-{i:05d}" for i in range(n)]
    return pd.DataFrame({"item_id": ids, "text": texts, "image_path": relative}), root


def bare_seconds(
    image_encoder: ImageEncoder, text_encoder: TextEncoder, pixels: list[torch.Tensor], tokens: list[BatchEncoding]
) -> float:
    """Seconds of the encoders' forward passes alone over pre-decoded images and pre-tokenised texts."""
    device = image_encoder.device
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in pixels:
            image_encoder.features(batch.to(device))
        for batch in tokens:
            text_encoder.model(**{key: value.to(device) for key, value in batch.items()})
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def bench_features(n: int, images: Path | None, device: str, repeats: int) -> dict:
    """``run_features`` against the bare encoder loop, interleaved; medians of ``repeats`` rounds."""
    from transformers.utils.logging import disable_progress_bar

    from em3.features import run_features
    from em3.features.encoders import TextEncoder, load_image_encoder
    from em3.features.extract import chunks, open_image

    disable_progress_bar()  # the text encoder's "Loading weights" bars, printed whatever FeaturesConfig.progress says
    cfg = FeaturesConfig(device=device, progress=False)
    with tempfile.TemporaryDirectory(prefix="em3-bench-features-") as scratch:
        workdir = Path(scratch)
        items, root = feature_items(n, images, workdir)
        started = time.perf_counter()
        image_encoder = load_image_encoder(cfg.image_encoder, cfg.image_size, cfg.image_grid, torch.device(device))
        text_encoder = TextEncoder(cfg.text_encoder, cfg.max_text_tokens, torch.device(device))
        load_seconds = time.perf_counter() - started
        decoded = [open_image(image_encoder, root / path) for path in items["image_path"]]
        pixels = [torch.stack(batch) for batch in chunks(decoded, cfg.batch_size)]
        tokenize = dict(padding="max_length", truncation=True, max_length=cfg.max_text_tokens, return_tensors="pt")
        tokens = [text_encoder.tokenizer(batch, **tokenize) for batch in chunks(items["text"].tolist(), cfg.batch_size)]
        bare_seconds(image_encoder, text_encoder, pixels, tokens)  # warm-up: first passes at these shapes are slow
        rounds = []
        for repeat in range(repeats):
            bare = bare_seconds(image_encoder, text_encoder, pixels, tokens)
            started = time.perf_counter()
            report = run_features(cfg, items, root, workdir / f"store-{repeat}")
            end_to_end = time.perf_counter() - started
            pipeline = report["image"]["seconds"] + report["text"]["seconds"]  # decode, encode, write per modality
            rounds.append((bare, pipeline, end_to_end))
    bare, pipeline, end_to_end = (statistics.median(values) for values in zip(*rounds, strict=True))
    return {
        "items": n,
        "batch_size": cfg.batch_size,
        "encoder_load_s": round(load_seconds, 2),
        "bare_items_per_s": round(n / bare, 2),
        "pipeline_items_per_s": round(n / pipeline, 2),
        "end_to_end_items_per_s": round(n / end_to_end, 2),
        "pipeline_overhead": round(statistics.median(p / b - 1 for b, p, _ in rounds), 4),
        "end_to_end_overhead": round(statistics.median(e / b - 1 for b, _, e in rounds), 4),
    }
