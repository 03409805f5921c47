"""What the catalogue holds per modality: items with image and text, image only, text only, or neither (an id
only), with the positive rows (purchases, clicks) of each. Ingest records it in ``manifest.json``
(``catalogue``), validate in its report, where a modality missing on more than
``validation.max_missing_fraction`` of the items fails (by default never: a catalogue without photos is valid).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

CONTENT = ("image_and_text", "image_only", "text_only", "neither")
MODALITIES = ("image", "text")


def positive_rows(interactions: pd.DataFrame) -> pd.Series:
    """Positive rows per item id of ``interactions`` (a whole table or one batch of it: counts add up)."""
    return interactions.loc[interactions["label"] == 1, "item_id"].value_counts()


def content_summary(items: pd.DataFrame, positives: pd.Series, usable_image: pd.Series | None = None) -> dict:
    """Counts per content class of ``items`` (``text`` "" and ``image_path`` "" mean missing; ``usable_image``,
    aligned with ``items``, can mark more images unusable) and the positive rows of each (``positives``: per item
    id, ``positive_rows``)."""
    has_image = items["image_path"] != ""
    if usable_image is not None:
        has_image &= usable_image
    has_text = items["text"] != ""
    content = np.select([has_image & has_text, has_image, has_text], CONTENT[:3], CONTENT[3])
    per_item = items["item_id"].map(positives).fillna(0).to_numpy()
    total = len(items)
    return {
        "items": total,
        "by_content": {
            name: {"items": int((content == name).sum()), "positive_rows": int(per_item[content == name].sum())}
            for name in CONTENT
        },
        "missing_fraction": {
            "image": float((~has_image).mean()) if total else 0.0,
            "text": float((~has_text).mean()) if total else 0.0,
        },
    }


def content_markdown(summary: dict[str, Any]) -> list[str]:
    """The summary as Markdown lines (a table of content classes)."""
    total = summary["items"] or 1
    return [
        "| content | items | share | positive rows |",
        "|---|--:|--:|--:|",
        *(
            f"| {name.replace('_', ' ')} | {row['items']} | {row['items'] / total:.2%} | {row['positive_rows']} |"
            for name, row in summary["by_content"].items()
        ),
    ]
