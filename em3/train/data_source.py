"""Which data a training run reads, said in one line when it starts and recorded in its ``metrics/train.json``.

``data.source`` decides, and it stays ``synthetic`` by default even when ingested tables exist: a config means the
same data whatever is on disk. So the line says when a synthetic run leaves ingested tables unused, and how to use
them (``data.source: tables``).
"""

from __future__ import annotations

from em3.config import Config
from em3.errors import DataError


def training_data(cfg: Config) -> dict:
    """``source`` (synthetic or tables); for the synthetic log its sizes, for tables their folders, where ingest read
    them (``ingested_from``) and the data hash (em3.validation.contract.data_hash; both None without a readable
    manifest)."""
    data = cfg.data
    if data.source == "synthetic":
        sizes = data.synthetic
        return {"source": "synthetic", "users": sizes.n_users, "items": sizes.n_items, "days": sizes.n_days}
    from em3.validation.contract import data_hash, read_manifest

    try:
        ingested_from, digest = read_manifest(data.tables_dir).get("source"), data_hash(data.tables_dir)
    except (DataError, KeyError):
        ingested_from, digest = None, None
    return {
        "source": "tables",
        "tables_dir": str(data.tables_dir),
        "store_dir": str(data.store_dir),
        "ingested_from": ingested_from,
        "data_hash": digest,
    }


def data_line(cfg: Config, described: dict) -> str:
    """The line a run prints when it starts: which data it trains on."""
    if described["source"] == "synthetic":
        line = (
            f"{cfg.name} trains on the SYNTHETIC token-level log (data.source: synthetic; {described['users']} "
            f"users, {described['items']} items, {described['days']} days)"
        )
        manifest = cfg.data.tables_dir / "manifest.json"
        if manifest.is_file():
            line += f", NOT on the ingested tables in {cfg.data.tables_dir}: set data.source: tables to use them"
        return line
    digest = (described["data_hash"] or "unknown")[:12]
    return (
        f"{cfg.name} trains on the tables in {described['tables_dir']} (ingested from "
        f"{described['ingested_from']}, data hash {digest}), token store {described['store_dir']}"
    )
