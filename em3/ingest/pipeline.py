"""The ingest stage: a local or S3 source in the H&M or native layout -> canonical Parquet tables + manifest.

Raw files are read as strings and checked first (em3.validation.suites); failing rows go to
``quarantine/<table>.parquet`` with a reason and are left out of everything built afterwards (negatives
included). Bad rows never stop ingest: ``validate`` applies the threshold. Outputs, in ``out_dir``:
``interactions.parquet``, ``items.parquet``, ``users.parquet``, ``images/``, ``quarantine/``,
``manifest.json``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from em3.atomic import staged_dir, write_json
from em3.config import IngestConfig
from em3.ingest.hm import read_hm
from em3.ingest.images import copy_images
from em3.ingest.interactions import build_interactions
from em3.ingest.manifest import make_manifest
from em3.ingest.native import read_native
from em3.ingest.sources import open_source
from em3.validation.contract import INTERACTIONS, MANIFEST, resolve_split_dates
from em3.validation.output import write_parquet

QUARANTINE = "quarantine"


def run_ingest(cfg: IngestConfig, out_dir: Path) -> dict[str, Any]:
    """Ingest ``cfg.source`` into ``out_dir`` (replaced only on success); returns the manifest."""
    source = open_source(cfg.source)
    read = read_hm if cfg.format == "hm" else read_native
    with tempfile.TemporaryDirectory() as scratch, staged_dir(Path(out_dir), MANIFEST) as stage:
        raw = read(source, cfg, Path(scratch))
        cfg = resolve_split_dates(cfg, raw.events["ts"])  # the manifest records the dates used
        image_paths, images, images_sha = copy_images(source, raw.items, raw.image_root, stage)
        interactions, negatives_missing = build_interactions(raw.events, raw.purchases, cfg)
        items = raw.items.drop(columns="image_key")
        items.insert(2, "image_path", image_paths)
        tables = {"interactions": interactions, "items": items, "users": raw.users}
        for name, table in tables.items():
            write_parquet(table, stage / f"{name}.parquet", INTERACTIONS if name == "interactions" else None)
        checks = [*raw.checks, images]
        for check in checks:
            if len(check.quarantine):
                write_parquet(check.quarantine, stage / QUARANTINE / f"{check.summary['table']}.parquet")
        manifest = make_manifest(cfg, raw.files, images_sha, tables, checks, negatives_missing)
        write_json(stage / MANIFEST, manifest)
    return manifest
