"""The checks of each table: raw inputs (run by ingest before anything is built from them) and the canonical tables
(run by validate). Each ``check_*`` parses its table to types, adds the helper columns that its suite file may check
(what GX has no expectation for: ``<id>_known``, ``<id>_repeated``, ``<column>_number``, an image's ``problem``) and
quarantines the rows failing the expectations of ``data_validation/<stage>/<table>.json`` (em3.validation.suite_file).

Date range and text length come from the ``IngestConfig`` that built the data (validate reads it from the
manifest), as does the folder of the suite files, so both stages apply the same contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.contrib.concurrent import thread_map

from em3.config import IngestConfig
from em3.sources import UNSAFE_PATH, file_sha256
from em3.validation.contract import read_image_sums
from em3.validation.engine import MODALITY, ROWS, Checked, check_table
from em3.validation.images import IO_WORKERS, inspect_image
from em3.validation.suite_file import load_suite

DAY_TIME = r"^(?P<day>\d{4}-\d{2}-\d{2})(?P<time>[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
ARTICLE_ID = r"^\d{10}$"  # H&M photo names (em3.ingest.items); raw/articles.json checks ids with the same pattern
INTERACTION_KEY = ("user_id", "item_id", "ts")  # one canonical row per key
SHORT_ARTICLE_ID = r"\d{1,9}"  # an article id that a spreadsheet or pandas wrote without its leading zeros


# -- raw H&M -------------------------------------------------------------------------------------------------


def hm_text(articles: pd.DataFrame) -> pd.Series:
    """An H&M article's text: ``prod_name. detail_desc``, or whichever of the two is not empty ("" if neither)."""
    name, desc = articles["prod_name"].str.strip(), articles["detail_desc"].str.strip()
    both = (name != "") & (desc != "")
    return (name + ". " + desc).where(both, name + desc)


def check_articles(raw: pd.DataFrame, cfg: IngestConfig) -> Checked:
    """Article rows: a row is lost only when its id is unusable; its text is checked as a modality
    (``check_texts``)."""
    checked = raw.assign(article_id=padded_article_ids(raw["article_id"]))
    return _check("raw", "articles", raw, checked.assign(**_repeats(checked, "article_id")), cfg)


def padded_article_ids(ids: pd.Series) -> pd.Series:
    """Article ids without their leading zeros (``108775015``) padded back to the 10 digits of an H&M id: the same
    article. The quarantine keeps the id as read."""
    return ids.where(~ids.str.fullmatch(SHORT_ARTICLE_ID), ids.str.zfill(10))


def check_customers(raw: pd.DataFrame, cfg: IngestConfig) -> Checked:
    return _check_users_file("customers", "customer_id", raw, cfg)


def check_transactions(raw: pd.DataFrame, cfg: IngestConfig, article_ids: Iterable[str]) -> Checked:
    """Purchases: a customer without a (valid) ``customers.csv`` row is still a user, with unknown attributes. A
    day with a time of day (``2020-09-20 00:00:00``) is that day (helper ``t_dat_had_time``); an empty or NaN
    price is unknown (NaN), not a bad row: no output uses price."""
    day, had_time = _days(raw["t_dat"])
    price = raw["price"].str.strip()
    number = pd.to_numeric(price, errors="coerce")
    checked = raw.assign(
        t_dat=day,
        t_dat_had_time=had_time,
        price=number,
        price_number=number.notna() | (price == "") | (price.str.lower() == "nan"),
        article_id=(ids := padded_article_ids(raw["article_id"])),
        article_id_known=ids.isin(article_ids),
    )
    return _check("raw", "transactions", raw, checked, cfg)


# -- raw native ----------------------------------------------------------------------------------------------


def check_native_items(raw: pd.DataFrame, cfg: IngestConfig) -> Checked:
    """Items-file rows: a row is lost only when its id is unusable or its ``image_path`` (optional column)
    leaves the source; its text is checked as a modality (``check_texts``)."""
    return _check("raw", "items", raw, raw.assign(**_repeats(raw, "item_id")), cfg)


def check_impressions(raw: pd.DataFrame, cfg: IngestConfig, item_ids: Iterable[str]) -> Checked:
    checked = raw.assign(ts=_timestamps(raw["ts"]), item_id_known=raw["item_id"].isin(item_ids))
    return _check("raw", "impressions", raw, checked, cfg)


def check_native_users(raw: pd.DataFrame, cfg: IngestConfig) -> Checked:
    return _check_users_file("users", "user_id", raw, cfg)


# -- modalities (a failing row masks the modality; the item stays) ------------------------------------------


def check_texts(texts: pd.DataFrame, cfg: IngestConfig) -> Checked:
    """``texts``: ``item_id``, ``text`` of every item with a row. Empty texts are masked, longer ones cut to
    ``max_text_chars``; the quarantine keeps the text as read."""
    return _check("raw", "texts", texts, texts, cfg, kind=MODALITY)


def check_images(images: pd.DataFrame, cfg: IngestConfig) -> Checked:
    """``images``: one row per item with a photo (``item_id``, source ``image_path``, ``problem``, "" if none);
    a bad photo is masked, its item stays."""
    return _check("raw", "images", images, images, cfg, kind=MODALITY)


# -- canonical -----------------------------------------------------------------------------------------------


def check_interactions(
    frame: pd.DataFrame,
    cfg: IngestConfig,
    user_ids: Iterable[str],
    item_ids: Iterable[str],
    repeated: np.ndarray | None = None,
    day: date | None = None,
) -> Checked:
    """Interactions rows; ``repeated`` marks the rows whose key an earlier row has (default: found within
    ``frame``; a batch of a larger table gets them from em3.validation.batches); ``day``: the day partition the
    rows were read from, which each row's ``ts`` must lie on (None: not checked)."""
    ts = pd.to_datetime(frame["ts"], errors="coerce")
    checked = frame.assign(
        ts=ts,
        ts_on_day=True if day is None else ts.dt.normalize() == pd.Timestamp(day),
        user_id_known=frame["user_id"].isin(user_ids),
        item_id_known=frame["item_id"].isin(item_ids),
        user_id_repeated=frame.duplicated(list(INTERACTION_KEY)) if repeated is None else repeated,
    )
    return _check("canonical", "interactions", frame, checked, cfg)


def check_items(frame: pd.DataFrame, cfg: IngestConfig, data_dir: Path) -> Checked:
    """Items, with every non-empty ``image_path`` (relative to ``data_dir``) checked: an image whose bytes
    match the sha256 ingest recorded after decoding it is good, any other one is decoded. Paths leaving
    ``data_dir`` are never opened."""
    verified = read_image_sums(data_dir)

    def problem(rel: str) -> str:
        path = data_dir / rel
        if not rel or (rel in verified and path.is_file() and file_sha256(path) == verified[rel]):
            return ""
        return inspect_image(path).problem

    paths = frame["image_path"].where(~frame["image_path"].str.contains(UNSAFE_PATH), "")
    problems = thread_map(
        problem,
        paths.tolist(),
        max_workers=IO_WORKERS,
        chunksize=64,
        desc="verify images",
        unit="img",
        mininterval=1,
        disable=not paths.astype(bool).any(),  # a catalogue without photos draws no bar
    )
    checked = frame.assign(item_id_repeated=frame["item_id"].duplicated(), image_problem=problems)
    return _check("canonical", "items", frame, checked, cfg)


def check_users(frame: pd.DataFrame, cfg: IngestConfig) -> Checked:
    return _check("canonical", "users", frame, frame.assign(user_id_repeated=frame["user_id"].duplicated()), cfg)


# -- shared --------------------------------------------------------------------------------------------------


def _check(
    stage: str,
    table: str,
    rows: pd.DataFrame,
    checked: pd.DataFrame,
    cfg: IngestConfig,
    kind: str = ROWS,
    for_each: Mapping[str, Sequence[str]] | None = None,
) -> Checked:
    """``rows`` (as read) checked as ``checked`` (typed, with helper columns) by the suite file of the table."""
    suite = load_suite(cfg, stage, table, checked.columns.tolist(), for_each)
    return check_table(table, rows, checked, suite.rules, kind, suite.parameters)


def _timestamps(values: pd.Series) -> pd.Series:
    """ISO 8601 timestamps (naive UTC, to the microsecond); NaT where a value does not parse. Times keep their time
    of day (taken in UTC), so that histories can hold strictly earlier events (em3.data.history)."""
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True).dt.tz_localize(None)
    return parsed.dt.floor("us")


def _days(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A day-stamped column: ``YYYY-MM-DD``, or an ISO 8601 date-time whose date (as written) is taken. Returns
    the days (NaT where a value is neither) and whether each value had a time part."""
    parts = values.str.strip().str.extract(DAY_TIME)
    day = pd.to_datetime(parts["day"], format="%Y-%m-%d", errors="coerce")
    return day, day.notna() & parts["time"].notna()


def _repeats(raw: pd.DataFrame, id_column: str) -> dict[str, pd.Series]:
    """Helper columns of a file keyed by ``id_column``: ``<id>_repeated``, a later row equal to its id's first row
    in every column (nothing is lost by dropping it), and ``<id>_conflicting``, a later row whose id an earlier row
    has with other values (the first row is kept; the conflict is reported apart)."""
    later = raw[id_column].duplicated()
    others = raw.drop(columns=id_column)
    same = (others == others.groupby(raw[id_column], sort=False).transform("first")).all(axis=1)
    return {f"{id_column}_repeated": later & same, f"{id_column}_conflicting": later & ~same}


def _check_users_file(table: str, id_column: str, raw: pd.DataFrame, cfg: IngestConfig) -> Checked:
    """A users file; the helper ``<column>_number`` tells whether a ``cfg.numeric_user_columns`` column (but
    ``age``, which its suite checks itself) holds a finite number or nothing (the other columns are free strings)."""
    numeric = [c for c in cfg.numeric_user_columns if c in raw and c != "age"]
    checked = raw.assign(
        **_repeats(raw, id_column),
        **{f"{c}_number": _number_or_empty(raw[c]) for c in numeric},
    )
    return _check("raw", table, raw, checked, cfg, for_each={"numeric_user_columns": numeric})


def _number_or_empty(values: pd.Series) -> pd.Series:
    number = pd.to_numeric(values.str.strip(), errors="coerce")
    return (values.str.strip() == "") | np.isfinite(number)
