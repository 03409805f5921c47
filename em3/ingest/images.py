"""Copy item images from the source next to the output (``<out>/images/<key>``) and check each one.

An image that is missing, empty, does not decode or is a link out of the source is quarantined (table ``images``,
with its ``problem``, which names the file in the source, not the copy checked) and its item keeps no image
(``image_path`` ""): the models handle a missing modality, so the item and its interactions stay. Whatever Pillow
decodes is accepted, whatever its name says; the real formats are counted and the files whose format differs from
their name listed. ``images/SHA256SUMS`` lists the sha256 of every copied image
(em3.validation.contract.IMAGE_SUMS).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from tqdm.contrib.concurrent import thread_map

from em3.config import IngestConfig
from em3.ingest.raw import shown_name
from em3.sources import OutsideSource, Source, file_sha256
from em3.validation.contract import IMAGE_SUMS
from em3.validation.engine import Checked
from em3.validation.images import IO_WORKERS, format_matches_name, inspect_image
from em3.validation.suites import check_images

SHOWN_FILES = 20


@dataclass
class CopiedImages:
    paths: pd.Series  # per item: image_path relative to the output, "" if none or bad
    checked: Checked  # the images table
    summary: dict[str, Any]  # for the manifest


def copy_images(source: Source, items: pd.DataFrame, root: str, out_dir: Path, cfg: IngestConfig) -> CopiedImages:
    """Copy ``<root>/<image_key>`` of ``source`` to ``out_dir/images/<image_key>`` for each item (``items``:
    ``item_id``, ``image_key``, "" for no image) and check them."""
    images_dir = out_dir / "images"
    keys = items["image_key"]
    wanted = items[keys != ""]

    def copy(key: str) -> tuple[str, str, str]:
        dest, rel = images_dir / key, str(PurePosixPath(root, key))
        try:
            if not source.fetch(rel, dest):
                return "missing", "", ""
        except OutsideSource:
            return "a link to a file outside the source (refused)", "", ""
        if (check := inspect_image(dest, shown_name(source, rel))).problem:
            dest.unlink()
            return check.problem, "", ""
        return "", file_sha256(dest), check.format

    unique = sorted(set(wanted["image_key"]))
    copied = dict(
        zip(
            unique,
            thread_map(
                copy,
                unique,
                max_workers=IO_WORKERS,
                chunksize=16,
                desc="copy images",
                unit="img",
                mininterval=1,
                disable=not unique,  # a log without photos draws no bar
            ),
            strict=True,
        )
    )
    checked = check_images(
        pd.DataFrame(
            {
                "item_id": wanted["item_id"],
                "image_path": [str(PurePosixPath(root, key)) for key in wanted["image_key"]],
                "problem": [copied[key][0] for key in wanted["image_key"]],
            },
            index=wanted.index,
        ),
        cfg,
    )
    sums = "".join(f"{sha}  images/{key}\n" for key, (_, sha, _) in copied.items() if sha)
    (out_dir / IMAGE_SUMS).parent.mkdir(parents=True, exist_ok=True)
    (out_dir / IMAGE_SUMS).write_text(sums)
    paths = ("images/" + keys).where(items.index.isin(checked.kept.index), "")
    renamed = [
        {"image_path": str(PurePosixPath(root, key)), "format": found}
        for key, (_, _, found) in copied.items()
        if found and not format_matches_name(found, key)
    ]
    summary = {
        "copied": int((paths != "").sum()),
        "formats": dict(sorted(Counter(found for _, _, found in copied.values() if found).items())),
        "format_differs_from_name": len(renamed),
        "format_differs_from_name_sample": renamed[:SHOWN_FILES],
        "sha256_of_SHA256SUMS": hashlib.sha256(sums.encode()).hexdigest(),
    }
    return CopiedImages(paths, checked, summary)
