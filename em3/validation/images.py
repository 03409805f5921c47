"""Is an image file present and decodable?

A file counts as an image when Pillow can both ``verify()`` it (structure, checksums) and decode it (catches
truncated JPEGs, which ``verify()`` alone accepts); JPEGs decode at reduced scale (DCT scaling), which reads
every byte at a fraction of the cost. The bytes must be in the format the name says (``.jpg`` holds a JPEG,
``.png`` a PNG, ...): a PNG named ``.jpg`` means a broken export upstream (and a transparent PNG would lose its
alpha channel unseen when converted to RGB), so it is refused with a reason; other suffixes are not checked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

IO_WORKERS = 8
DRAFT_SIZE = (64, 64)
JPEG = ("JPEG", "MPO")  # MPO: a JPEG with extra frames (some cameras), read as its first frame
FORMATS_OF_SUFFIX = {".jpg": JPEG, ".jpeg": JPEG, ".png": ("PNG",), ".webp": ("WEBP",), ".gif": ("GIF",),
                     ".bmp": ("BMP",)}  # fmt: skip


def image_problem(path: Path) -> str:
    """ "" for a usable image, else what is wrong with it."""
    from PIL import Image

    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as image:
            found = image.format
            image.verify()
        with Image.open(path) as image:
            image.draft("RGB", DRAFT_SIZE)
            image.load()
    except Exception as exc:  # Pillow raises many types for bad bytes; all mean "not an image"
        return f"not a decodable image ({type(exc).__name__}: {exc})"
    expected = FORMATS_OF_SUFFIX.get(path.suffix.lower())
    if expected and found not in expected:
        return f"{found} data in a {path.suffix} file (expected {expected[0]}): the format does not match the name"
    return ""


def file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
