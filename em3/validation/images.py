"""Is an image file present and decodable?

A file counts as an image when Pillow can both ``verify()`` it (structure, checksums) and decode it (catches
truncated JPEGs, which ``verify()`` alone accepts); JPEGs decode at reduced scale (DCT scaling), which reads
every byte at a fraction of the cost. The format is taken from the bytes, not the name: a PNG named ``.jpg``
is accepted when it decodes, since every consumer opens images through Pillow.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

IO_WORKERS = 8
DRAFT_SIZE = (64, 64)


def image_problem(path: Path) -> str:
    """ "" for a usable image, else what is wrong with it."""
    from PIL import Image

    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.draft("RGB", DRAFT_SIZE)
            image.load()
    except Exception as exc:  # Pillow raises many types for bad bytes; all mean "not an image"
        return f"not a decodable image ({type(exc).__name__}: {exc})"
    return ""


def file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
