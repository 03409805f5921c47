"""The item catalogue of a source: every item with a row (``articles.csv``, the native items file) or a photo.

An item is known when it has either, and the purchases and impressions of known items are kept whatever else
is missing. Texts are checked as a modality (table ``texts``): an empty text is masked (""), a longer one than
``ingest.max_text_chars`` is cut to that length (the text encoder reads only its first
``features.max_text_tokens`` tokens, so the cut loses nothing it would read); the text as read goes to
``quarantine/texts.parquet`` with the reason. Photos (table ``images``, em3.ingest.images) are masked when
missing or broken. Photos with no row become image-only items: H&M ``images/<first 3 digits>/<article_id>.jpg``,
native ``images/<item_id>.<image suffix>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import pandas as pd

from em3.config import IngestConfig
from em3.validation.engine import Checked
from em3.validation.images import SUFFIXES
from em3.validation.suites import ARTICLE_ID, check_texts

IMAGES_DIR = "images"
SHOWN_FILES = 5


@dataclass(frozen=True)
class Photos:
    """The photos of a source's ``images/`` folder: item id -> image key, and the files that name no item."""

    by_item: dict[str, str]
    listed: int
    ignored: list[str] = field(default_factory=list)


def hm_photos(files: list[str]) -> Photos:
    """``images/<first 3 digits>/<article_id>.jpg`` -> article id; keys relative to ``images/``."""
    by_item, ignored = {}, []
    for rel in files:
        parts = PurePosixPath(rel).relative_to(IMAGES_DIR).parts
        article = parts[-1].removesuffix(".jpg")
        if len(parts) == 2 and parts[-1].endswith(".jpg") and re.match(ARTICLE_ID, article) and parts[0] == article[:3]:
            by_item[article] = "/".join(parts)
        else:
            ignored.append(rel)
    return Photos(by_item, len(files), ignored)


def native_photos(files: list[str]) -> Photos:
    """``images/<item_id>.<image suffix>`` (directly in ``images/``) -> item id (the first file in name order
    when several); keys relative to the source root, as ``image_path`` values are. Files in subfolders are left
    to the items file's ``image_path``."""
    by_item, ignored = {}, []
    for rel in files:
        path = PurePosixPath(rel)
        if path.parent.as_posix() == IMAGES_DIR and path.suffix.lower() in SUFFIXES and path.stem not in by_item:
            by_item[path.stem] = rel
        else:
            ignored.append(rel)
    return Photos(by_item, len(files), ignored)


def build_items(rows: pd.DataFrame, photos: Photos, cfg: IngestConfig) -> tuple[pd.DataFrame, Checked, dict]:
    """The catalogue from clean item rows (``item_id``, ``text``, ``image_key`` "" when none is given, then
    categorical columns as strings) and the photos: the rows, their texts stripped, masked or cut and their missing
    image keys taken from ``photos``, then one image-only item per photo without a row (categoricals "").
    Returns the items, the ``texts`` check and a summary for the manifest."""
    rows = rows.assign(text=rows["text"].str.strip())  # a text of spaces is no text
    texts = check_texts(rows[["item_id", "text"]], cfg)
    cut = int((rows["text"].str.len() > cfg.max_text_chars).sum())
    found = pd.Series([photos.by_item.get(item, "") for item in rows["item_id"]], index=rows.index, dtype=object)
    rows = rows.assign(
        text=rows["text"].str.slice(0, cfg.max_text_chars),
        image_key=rows["image_key"].where(rows["image_key"] != "", found),
    )
    known, used = set(rows["item_id"]), set(rows["image_key"])  # a photo a row names is that row's item's
    photo_only = sorted(item for item, key in photos.by_item.items() if item not in known and key not in used)
    extra = pd.DataFrame(
        {"item_id": photo_only, "text": "", "image_key": [photos.by_item[item] for item in photo_only]},
        columns=rows.columns,
    ).fillna("")
    items = pd.concat([rows, extra], ignore_index=True) if photo_only else rows.reset_index(drop=True)
    summary = {
        "items_with_a_row": len(rows),
        "items_from_a_photo_only": len(photo_only),
        "photos_listed": photos.listed,
        "photos_ignored": len(photos.ignored),
        "photos_ignored_sample": photos.ignored[:SHOWN_FILES],
        "texts_masked": int((rows["text"] == "").sum()),
        "texts_cut": cut,
        "texts_cut_to_chars": cfg.max_text_chars,
    }
    return items, texts, summary
