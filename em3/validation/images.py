"""Is an image file present and decodable, and in which format?

A file counts as an image when Pillow can both ``verify()`` it (structure, checksums) and decode it (catches
truncated JPEGs, which ``verify()`` alone accepts); JPEGs decode at reduced scale (DCT scaling), which reads
every byte at a fraction of the cost. The format comes from the bytes, not from the name: a PNG named ``.jpg``
is accepted when it decodes, and its real format is recorded (``manifest.json`` → ``images.formats`` and
``images.format_differs_from_name``), so that a broken export upstream is visible without losing the photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IO_WORKERS = 8
DRAFT_SIZE = (64, 64)
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")  # names taken for photos when listing a folder
JPEG = ("JPEG", "MPO")  # MPO: a JPEG with extra frames (some cameras), read as its first frame
FORMATS_OF_SUFFIX = {
    ".jpg": JPEG,
    ".jpeg": JPEG,
    ".png": ("PNG",),
    ".webp": ("WEBP",),
    ".gif": ("GIF",),
    ".bmp": ("BMP",),
}


@dataclass(frozen=True)
class ImageCheck:
    problem: str  # "" for a usable image, else what is wrong with it
    format: str = ""  # Pillow's name of the format the bytes are in ("JPEG", "PNG", ...), "" if unusable


def inspect_image(path: Path, shown: str = "") -> ImageCheck:
    """Whether ``path`` is a usable image, and its real format. ``shown``: the file's name in the problem (default
    ``path``), for a copy checked under another name, such as ingest's download of a source file."""
    from PIL import Image

    if not path.is_file():
        return ImageCheck("missing")
    if path.stat().st_size == 0:
        return ImageCheck("empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            found = image.format or ""
            image.verify()
        with Image.open(path) as image:
            image.draft("RGB", DRAFT_SIZE)
            image.load()
    except Exception as exc:  # Pillow raises many types for bad bytes; all mean "not an image"
        message = str(exc).replace(str(path), shown) if shown else str(exc)  # Pillow names the file it opened
        return ImageCheck(f"not a decodable image ({type(exc).__name__}: {message})")
    return ImageCheck("", found)


def format_matches_name(image_format: str, name: str) -> bool:
    """Whether the bytes' format is the one the file name's suffix promises (unknown suffixes promise nothing)."""
    expected = FORMATS_OF_SUFFIX.get(Path(name).suffix.lower())
    return expected is None or image_format in expected
