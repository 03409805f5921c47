"""The `features` stage: run the frozen encoders over the catalogue into the memory-mapped token store.

Each item's image and text are cached separately under a content hash (sha256 of the encoder settings
and the image bytes or the text): a re-run copies the rows of unchanged content from the previous store and
encodes only new or changed content. Bad content never fails the stage: an item without a usable image (none
given, missing, zero-byte, corrupt, or a path escaping the image root) or with an empty text gets that
modality masked (mask all False, pooled zeros) and is counted in the report. A modality that no item has at all
(a text-only log without photos, a photo-only catalogue without texts) is absent: its encoder is not loaded and
its arrays are stored with zero tokens of width zero (em3.data.token_store), not as zeros per item.

Token budget with the defaults (3×3 grid of 1280-d image tokens, 32 text tokens of 384-d, fp16): image tokens
23,040 B + text tokens 24,576 B + pooled vectors 3,328 B + masks 41 B = 50,985 B per item, about 5.1 GB per
100k items (the full 7×7 map alone would be 125 KB per item). The report states the exact figure. The store is
written in place, in its staging folder, through file mappings whose pages are handed back to the kernel every
256 MiB, and rows reused from the previous store are read from its files (em3.data.mapped): the stage's RSS does
not grow with the catalogue.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import numpy as np

from em3.atomic import staged_dir, write_json
from em3.data.mapped import MappedArrays
from em3.progress import progress_bar

if TYPE_CHECKING:
    import pandas as pd

    from em3.config import FeaturesConfig
    from em3.data.token_store import TokenStore
    from em3.features.encoders import Encoded, FrozenEncoder, ImageEncoder

log = logging.getLogger(__name__)

ITEM_COLUMNS = ("item_id", "text", "image_path")
COPY_CHUNK = 4096  # rows copied from the previous store at a time (bounds memory on large stores)
Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Content:
    """One item's input for one modality: its content hash and source, or why there is nothing to encode."""

    key: str = ""
    source: Any = None  # image path or text
    problem: str | None = None


@dataclass
class Modality:
    """One modality's inputs and encoder, and (after `fill`) the outcome per row (1-based; 0 = padding)."""

    name: str  # "image" | "text": the token store arrays are <name>_tokens, <name>_mask, pooled_<name>
    position: int  # index of this modality's key in a store's "image_key:text_key" content hashes
    encoder: FrozenEncoder | None  # None: no item has this modality (nothing to encode, zero-width arrays)
    prepare: Callable[[Any], Any] | None  # source -> encoder input, None if undecodable (runs in the thread pool)
    contents: list[Content]
    keys: list[str] = field(default_factory=list)  # per row: the content key, "" where the row has no content
    encoded: set[int] = field(default_factory=set)
    reused: set[int] = field(default_factory=set)
    problems: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    @property
    def arrays(self) -> tuple[str, str, str]:
        return f"{self.name}_tokens", f"{self.name}_mask", f"pooled_{self.name}"


def digest(fingerprint: str, content: bytes) -> str:
    return hashlib.sha256(fingerprint.encode() + b"\0" + content).hexdigest()


def image_content(root: Path, fingerprint: str, relative: str) -> Content:
    """Hash an image file given relative to `root`; absolute paths and paths leading out of it are refused."""
    if not relative:
        return Content(problem="no_image")
    path = (root / relative).resolve()
    if PurePath(relative).is_absolute() or not path.is_relative_to(root.resolve()):
        return Content(problem="outside_root")
    try:
        data = path.read_bytes()
    except (OSError, ValueError):
        return Content(problem="missing_file")
    return Content(digest(fingerprint, data), path) if data else Content(problem="empty_file")


def text_content(fingerprint: str, text: str) -> Content:
    text = text.strip()
    return Content(digest(fingerprint, text.encode()), text) if text else Content(problem="empty_text")


def open_image(encoder: ImageEncoder, path: Path) -> Any:
    """Decode and preprocess one image; None when it cannot be decoded (corrupt, truncated, not an image)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return encoder.preprocess(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        log.debug("cannot decode %s: %s", path, exc)
        return None


def chunks(values: list, size: int) -> list[list]:
    return [values[start : start + size] for start in range(0, len(values), size)]


def prefetched(pool: ThreadPoolExecutor, prepare: Callable, batches: Iterable[list]) -> Iterator[list]:
    """Prepared batches in order; the pool prepares the next batch while the caller encodes this one."""
    submitted = ([pool.submit(prepare, value) for value in batch] for batch in batches)
    ahead = next(submitted, None)
    while ahead is not None:
        current, ahead = ahead, next(submitted, None)
        yield [future.result() for future in current]


def cached_rows(modality: Modality, arrays: Arrays, previous: TokenStore | None) -> dict[str, int]:
    """Content key -> row of the previous store, for rows with content whose arrays fit the new ones."""
    if previous is None or previous.content_hashes is None:
        return {}
    if any(getattr(previous, name).shape[1:] != arrays[name].shape[1:] for name in modality.arrays):
        return {}
    keys = (entry.split(":")[modality.position] for entry in previous.content_hashes)
    return {key: row for row, key in enumerate(keys, start=1) if key}


def fill(
    modality: Modality,
    arrays: Arrays,
    mapped: MappedArrays,
    previous: TokenStore | None,
    pool: ThreadPoolExecutor,
    cfg: FeaturesConfig,
) -> None:
    """Fill one modality's rows: copy unchanged content from `previous`, encode the rest in batches."""

    cached = cached_rows(modality, arrays, previous)
    modality.keys = [""] * (len(modality.contents) + 1)
    copies: list[tuple[int, int]] = []  # (new row, previous row)
    # content key -> rows: identical content is encoded once
    pending: dict[str, list[int]] = defaultdict(list)
    for row, content in enumerate(modality.contents, start=1):
        if content.problem:
            modality.problems[content.problem].append(row)
        elif content.key in cached:
            copies.append((row, cached[content.key]))
            modality.keys[row] = content.key
        else:
            pending[content.key].append(row)

    for chunk in chunks(copies, COPY_CHUNK):
        new, old = (list(rows) for rows in zip(*chunk, strict=True))
        for name in modality.arrays:
            arrays[name][new] = previous.read_rows(name, np.array(old))
        mapped.touched(len(new) * sum(arrays[name][0].nbytes for name in modality.arrays))
        modality.reused.update(new)

    batches = chunks(list(pending), cfg.batch_size)
    sources = ([modality.contents[pending[key][0] - 1].source for key in batch] for batch in batches)
    total = sum(map(len, pending.values()))
    with progress_bar(total=total, desc=f"{modality.name} encoder", unit="item", disable=not cfg.progress) as bar:
        for batch, prepared in zip(batches, prefetched(pool, modality.prepare, sources), strict=True):
            good = {key: value for key, value in zip(batch, prepared, strict=True) if value is not None}
            for key in batch:
                if key not in good:
                    modality.problems["corrupt"].extend(pending[key])
            if good:
                out = modality.encoder(list(good.values()))
                write(modality, arrays, mapped, out, {key: pending[key] for key in good})
            bar.update(sum(len(pending[key]) for key in batch))


def write(
    modality: Modality, arrays: Arrays, mapped: MappedArrays, out: Encoded, rows_by_key: dict[str, list[int]]
) -> None:
    """Store a batch's outputs: output i goes to every row holding the i-th content key."""
    rows = [row for key_rows in rows_by_key.values() for row in key_rows]
    which = [i for i, key_rows in enumerate(rows_by_key.values()) for _ in key_rows]  # output index per row
    for name, values in zip(modality.arrays, (out.tokens, out.mask, out.pooled), strict=True):
        arrays[name][rows] = values.numpy()[which]  # float32 -> float16 on assignment
    mapped.touched(len(rows) * sum(arrays[name][0].nbytes for name in modality.arrays))
    for key, key_rows in rows_by_key.items():
        for row in key_rows:
            modality.keys[row] = key
    modality.encoded.update(rows)


def allocate(directory: Path, n_rows: int, modalities: list[Modality], mapped: MappedArrays) -> Arrays:
    """Zeroed store arrays, files in `directory` mapped through `mapped`, so that a large catalogue never sits in
    RAM whole."""
    shapes = {}
    for modality in modalities:
        tokens, mask, pooled = modality.arrays
        n_tokens, dim = (modality.encoder.n_tokens, modality.encoder.dim) if modality.encoder else (0, 0)
        shapes[tokens] = ((n_rows, n_tokens, dim), np.float16)
        shapes[mask] = ((n_rows, n_tokens), np.bool_)
        shapes[pooled] = ((n_rows, dim), np.float16)
    return {name: mapped.create(directory / f"{name}.npy", shape, dtype) for name, (shape, dtype) in shapes.items()}


def load_previous(out_dir: Path) -> TokenStore | None:
    from em3.data.token_store import TokenStore

    if not (out_dir / "index.json").exists():
        return None
    try:
        return TokenStore.load(out_dir)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring the unreadable previous store at %s (%s): encoding everything", out_dir, exc)
        return None


def checked_items(items: pd.DataFrame) -> pd.DataFrame:
    missing = [column for column in ITEM_COLUMNS if column not in items.columns]
    if missing:
        raise ValueError(f"items table lacks column(s) {missing}; expected {list(ITEM_COLUMNS)}")
    items = items.loc[:, list(ITEM_COLUMNS)].fillna("").astype(str)
    duplicated = items["item_id"][items["item_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"items table has {len(duplicated)} duplicate item_id values, e.g. {duplicated[0]!r}")
    return items


def summary(modality: Modality, item_ids: list[str], seconds: float) -> dict:
    """One modality's part of the report; logs bad content by reason, with a few example ids."""
    examples = {problem: [item_ids[row - 1] for row in rows[:5]] for problem, rows in modality.problems.items()}
    encoder = modality.encoder
    if encoder is None:
        log.info("no item has %s content: its encoder was not loaded and no %s tokens are stored", *[modality.name] * 2)
    for problem, rows in modality.problems.items() if encoder else ():
        if problem != "no_image":
            log.warning("%s masked for %d items (%s), e.g. %s", modality.name, len(rows), problem, examples[problem])
    return {
        "absent": encoder is None,
        "encoder": json.loads(encoder.fingerprint) if encoder else None,
        "tokens": encoder.n_tokens if encoder else 0,
        "dim": encoder.dim if encoder else 0,
        "encoded": len(modality.encoded),
        "reused": len(modality.reused),
        "missing": {problem: len(rows) for problem, rows in sorted(modality.problems.items())},
        "missing_examples": examples,
        "seconds": round(seconds, 3),
        "items_per_s": round(len(modality.encoded) / seconds, 2) if modality.encoded else None,
    }


def run_features(cfg: FeaturesConfig, items: pd.DataFrame, image_root: Path, out_dir: Path) -> dict:
    """Encode a canonical items table (`item_id`, `text`, `image_path` relative to `image_root`, "" if none)
    into the token store at `out_dir` (row i + 1 = items[i]). Returns the report (also `out_dir/report.json`):
    `items`, `items_encoded` (an encoder ran for the item), `items_reused` (the rest: content copied from the
    previous store, or none); per modality `encoded`, `reused`, `missing` (by reason), `items_per_s`; and
    `bytes_per_item`, `seconds`, `items_per_s` (items encoded per second of the whole run, loading included).
    """
    from em3.data.token_store import INDEX, write_index
    from em3.device import resolve_device
    from em3.features.encoders import TextEncoder, load_image_encoder

    started = time.perf_counter()
    image_root, out_dir = Path(image_root), Path(out_dir)
    items = checked_items(items)
    item_ids = items["item_id"].tolist()
    device = resolve_device(cfg.device, "features.device")
    has_image, has_text = (items["image_path"] != "").any(), (items["text"].str.strip() != "").any()
    image_encoder = load_image_encoder(cfg.image_encoder, cfg.image_size, cfg.image_grid, device) if has_image else None
    text_encoder = TextEncoder(cfg.text_encoder, cfg.max_text_tokens, device) if has_text else None
    previous = load_previous(out_dir)
    mapped = MappedArrays()
    with ThreadPoolExecutor(cfg.decode_workers) as pool, staged_dir(out_dir, INDEX) as staging:
        if image_encoder:
            paths = items["image_path"]
            image_contents = list(pool.map(partial(image_content, image_root, image_encoder.fingerprint), paths))
            image = Modality("image", 0, image_encoder, partial(open_image, image_encoder), image_contents)
        else:
            image = Modality("image", 0, None, None, [Content(problem="no_image")] * len(items))
        if text_encoder:
            text_contents = [text_content(text_encoder.fingerprint, text) for text in items["text"]]
            text = Modality("text", 1, text_encoder, text_encoder.preprocess, text_contents)
        else:
            text = Modality("text", 1, None, None, [Content(problem="empty_text")] * len(items))
        modalities = [image, text]
        arrays = allocate(staging, len(items) + 1, modalities, mapped)  # written in place: no copy at the end
        reports = {}
        for modality in modalities:
            modality_started = time.perf_counter()
            fill(modality, arrays, mapped, previous, pool, cfg)
            reports[modality.name] = summary(modality, item_ids, time.perf_counter() - modality_started)
        hashes = [f"{image_key}:{text_key}" for image_key, text_key in zip(image.keys, text.keys, strict=True)]
        write_index(staging, item_ids, hashes[1:])
        bytes_per_item = sum(array[0].nbytes for array in arrays.values())
    seconds = time.perf_counter() - started
    items_encoded = len(image.encoded | text.encoded)
    report = {
        "items": len(items),
        "items_encoded": items_encoded,
        "items_reused": len(items) - items_encoded,
        **reports,
        "bytes_per_item": bytes_per_item,
        "device": str(device),
        "store": str(out_dir),
        "seconds": round(seconds, 3),
        "items_per_s": round(items_encoded / seconds, 2),
    }
    write_json(out_dir / "report.json", report)  # the store is whole already; its report is written atomically too
    return report
