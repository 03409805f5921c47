"""Copy item images from the source next to the output (``<out>/images/<key>``) and check each one.

An image that is missing, empty or does not decode is quarantined (table ``images``, with its ``problem``) and
its item keeps no image (``image_path`` ""): the models handle a missing modality, so the item and its
interactions stay. ``images/SHA256SUMS`` lists the sha256 of every copied image
(em3.validation.contract.IMAGE_SUMS).
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import pandas as pd
from tqdm.contrib.concurrent import thread_map

from em3.ingest.sources import Source
from em3.validation.contract import IMAGE_SUMS
from em3.validation.engine import Checked
from em3.validation.images import IO_WORKERS, file_sha256, image_problem
from em3.validation.suites import check_images


def copy_images(source: Source, items: pd.DataFrame, root: str, out_dir: Path) -> tuple[pd.Series, Checked, str]:
    """Copy ``<root>/<image_key>`` of ``source`` to ``out_dir/images/<image_key>`` for each item (``items``:
    ``item_id``, ``image_key``, "" for no image). Returns each item's ``image_path`` relative to ``out_dir``
    ("" if none or bad), the checked images table, and the sha256 of SHA256SUMS."""
    images_dir = out_dir / "images"
    keys = items["image_key"]
    wanted = items[keys != ""]

    def copy(key: str) -> tuple[str, str]:
        dest = images_dir / key
        if not source.fetch(str(PurePosixPath(root, key)), dest):
            return "missing", ""
        if problem := image_problem(dest):
            dest.unlink()
            return problem, ""
        return "", file_sha256(dest)

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
        )
    )
    sums = "".join(f"{sha}  images/{key}\n" for key, (_, sha) in copied.items() if sha)
    (out_dir / IMAGE_SUMS).parent.mkdir(parents=True, exist_ok=True)
    (out_dir / IMAGE_SUMS).write_text(sums)
    paths = ("images/" + keys).where(items.index.isin(checked.kept.index), "")
    return paths, checked, hashlib.sha256(sums.encode()).hexdigest()
