"""The expectation suites: raw inputs (checked by ingest before anything is built from them) and the canonical
tables (checked by validate). Each ``check_*`` parses its table to types, adds helper columns for what GX has
no expectation for (an id is known, a key is repeated, an image decodes) and quarantines the failing rows.

Date range and text length come from the ``IngestConfig`` that built the data (validate reads it from the
manifest), so both stages apply the same contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.contrib.concurrent import thread_map

from em3.config import IngestConfig
from em3.validation.contract import SPLITS, UNSAFE_PATH, assign_split, read_image_sums
from em3.validation.engine import MODALITY, Checked, Rule, check_table, rule
from em3.validation.images import IO_WORKERS, file_sha256, inspect_image

ARTICLE_ID = r"^\d{10}$"
CUSTOMER_ID = r"^[0-9a-f]{64}$"
ID = r"^\S(?:.*\S)?$"  # non-empty, no surrounding whitespace
SMALL_INT = r"^\d{1,4}$"
AGE = r"^(?:\d{1,3}(?:\.\d+)?)?$"
LABEL = r"^[01]$"
LARGEST_FLOAT = float(np.finfo(np.float64).max)  # inf (also "1e400") is above it

REGEX = "expect_column_values_to_match_regex"
NOT_REGEX = "expect_column_values_to_not_match_regex"
NOT_NULL = "expect_column_values_to_not_be_null"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
LENGTH = "expect_column_value_lengths_to_be_between"


# -- raw H&M -------------------------------------------------------------------------------------------------


def hm_text(articles: pd.DataFrame) -> pd.Series:
    """An H&M article's text: ``prod_name. detail_desc``, or whichever of the two is not empty ("" if neither)."""
    name, desc = articles["prod_name"].str.strip(), articles["detail_desc"].str.strip()
    both = (name != "") & (desc != "")
    return (name + ". " + desc).where(both, name + desc)


def check_articles(raw: pd.DataFrame) -> Checked:
    """Article rows: a row is lost only when its id is unusable; its text is checked as a modality
    (``check_texts``)."""
    checked = raw.assign(article_id_repeated=raw["article_id"].duplicated())
    return check_table(
        "articles",
        raw,
        checked,
        [
            rule("article_id", "10 digits", REGEX, regex=ARTICLE_ID),
            _unique("article_id"),
        ],
    )


def check_customers(raw: pd.DataFrame, cfg: IngestConfig) -> Checked:
    return _check_users_file("customers", "customer_id", raw, cfg, CUSTOMER_ID, "64 lowercase hex digits")


def check_transactions(raw: pd.DataFrame, cfg: IngestConfig, article_ids: Iterable[str]) -> Checked:
    """Purchases: a customer without a (valid) ``customers.csv`` row is still a user, with unknown attributes."""
    checked = raw.assign(
        t_dat=_dates(raw["t_dat"], "%Y-%m-%d"),
        price=pd.to_numeric(raw["price"], errors="coerce"),
        article_id_known=raw["article_id"].isin(article_ids),
    )
    return check_table(
        "transactions",
        raw,
        checked,
        [
            *_date(cfg, "t_dat", "YYYY-MM-DD"),
            rule("customer_id", "64 lowercase hex digits", REGEX, regex=CUSTOMER_ID),
            rule("article_id", "10 digits", REGEX, regex=ARTICLE_ID),
            _known("article_id", "an item: a valid row of articles.csv or a photo images/NNN/<article_id>.jpg"),
            rule("price", "a number", NOT_NULL),
            rule("price", "non-negative and finite", BETWEEN, min_value=0, max_value=LARGEST_FLOAT),
            rule("sales_channel_id", "an integer 0-9999", REGEX, regex=SMALL_INT),
        ],
    )


# -- raw native ----------------------------------------------------------------------------------------------


def check_native_items(raw: pd.DataFrame) -> Checked:
    """Items-file rows: a row is lost only when its id is unusable or its ``image_path`` (optional column)
    leaves the source; its text is checked as a modality (``check_texts``)."""
    checked = raw.assign(item_id_repeated=raw["item_id"].duplicated())
    paths = [_safe_path()] if "image_path" in raw else []
    return check_table("items", raw, checked, [_id("item_id"), _unique("item_id"), *paths])


def check_impressions(raw: pd.DataFrame, cfg: IngestConfig, item_ids: Iterable[str]) -> Checked:
    checked = raw.assign(ts=_dates(raw["ts"], "ISO8601"), item_id_known=raw["item_id"].isin(item_ids))
    counts = [rule(c, "an integer 0-9999", REGEX, regex=SMALL_INT) for c in ("sales_channel_id", "units") if c in raw]
    return check_table(
        "impressions",
        raw,
        checked,
        [
            _id("user_id"),
            _id("item_id"),
            _known("item_id", "an item: a valid row of the items file or a photo images/<item_id>.<image suffix>"),
            *_date(cfg, "ts", "ISO 8601"),
            rule("label", "0 or 1", REGEX, regex=LABEL),
            *counts,
        ],
    )


def check_native_users(raw: pd.DataFrame, cfg: IngestConfig) -> Checked:
    return _check_users_file("users", "user_id", raw, cfg, ID, "non-empty, no surrounding spaces")


# -- modalities (a failing row masks the modality; the item stays) ------------------------------------------


def check_texts(texts: pd.DataFrame, cfg: IngestConfig) -> Checked:
    """``texts``: ``item_id``, ``text`` of every item with a row. Empty texts are masked, longer ones cut to
    ``max_text_chars``; the quarantine keeps the text as read."""
    return check_table(
        "texts",
        texts,
        texts,
        [
            rule("text", "not empty (else the item's text is masked)", LENGTH, min_value=1),
            rule(
                "text",
                f"at most {cfg.max_text_chars} characters (else cut to that length)",
                LENGTH,
                max_value=cfg.max_text_chars,
            ),
        ],
        kind=MODALITY,
    )


def check_images(images: pd.DataFrame) -> Checked:
    """``images``: one row per item with a photo (``item_id``, source ``image_path``, ``problem``, "" if none);
    a bad photo is masked, its item stays."""
    return check_table(
        "images",
        images,
        images,
        [
            rule("image_path", "an image file that exists and decodes", IN_SET, on="problem", value_set=[""]),
        ],
        kind=MODALITY,
    )


# -- canonical -----------------------------------------------------------------------------------------------


def check_interactions(
    frame: pd.DataFrame, cfg: IngestConfig, user_ids: Iterable[str], item_ids: Iterable[str]
) -> Checked:
    ts = pd.to_datetime(frame["ts"], errors="coerce")
    checked = frame.assign(
        ts=ts,
        user_id_known=frame["user_id"].isin(user_ids),
        item_id_known=frame["item_id"].isin(item_ids),
        user_id_repeated=frame.duplicated(["user_id", "item_id", "ts"]),
        split_matches=assign_split(ts, cfg.valid_start, cfg.test_start) == frame["split"],
    )
    return check_table(
        "interactions",
        frame,
        checked,
        [
            _id("user_id"),
            _known("user_id", "a user of users.parquet"),
            _id("item_id"),
            _known("item_id", "an item of items.parquet"),
            rule(
                "user_id",
                "one row per (user_id, item_id, ts)",
                IN_SET,
                on="user_id_repeated",
                value_set=[False],
            ),
            *_date(cfg, "ts", "a date or time"),
            rule("label", "0 or 1", IN_SET, value_set=[0, 1]),
            rule("split", "train, valid or test", IN_SET, value_set=list(SPLITS)),
            rule(
                "split",
                f"the split of ts (valid from {cfg.valid_start}, test from {cfg.test_start})",
                IN_SET,
                on="split_matches",
                value_set=[True],
            ),
            rule("cold", "true or false", NOT_NULL),
            rule("units", "non-negative", BETWEEN, min_value=0),
            rule("sales_channel_id", "non-negative", BETWEEN, min_value=0),
        ],
    )


def check_items(frame: pd.DataFrame, cfg: IngestConfig, data_dir: Path) -> Checked:
    """Items, with every non-empty ``image_path`` (relative to ``data_dir``) checked: an image whose bytes
    match the sha256 ingest recorded after decoding it is good, any other one is decoded."""
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
    )
    checked = frame.assign(item_id_repeated=frame["item_id"].duplicated(), image_problem=problems)
    return check_table(
        "items",
        frame,
        checked,
        [
            _id("item_id"),
            _unique("item_id"),
            rule(
                "text",
                f'at most {cfg.max_text_chars} characters ("" when masked)',
                LENGTH,
                max_value=cfg.max_text_chars,
            ),
            _safe_path(),
            rule(
                "image_path",
                "empty, or an image file that exists and decodes",
                IN_SET,
                on="image_problem",
                value_set=[""],
            ),
        ],
    )


def check_users(frame: pd.DataFrame) -> Checked:
    checked = frame.assign(user_id_repeated=frame["user_id"].duplicated())
    return check_table(
        "users",
        frame,
        checked,
        [
            _id("user_id"),
            _unique("user_id"),
            rule("age", "empty or between 0 and 120", BETWEEN, min_value=0, max_value=120),
        ],
    )


# -- shared rules --------------------------------------------------------------------------------------------


def _dates(values: pd.Series, fmt: str) -> pd.Series:
    """Timestamps (naive UTC, to the microsecond); NaT where a value does not parse. ISO 8601 times keep their
    time of day (taken in UTC), so that histories can hold strictly earlier events (em3.data.history)."""
    if fmt == "ISO8601":
        parsed = pd.to_datetime(values, format=fmt, errors="coerce", utc=True).dt.tz_localize(None)
        return parsed.dt.floor("us")
    return pd.to_datetime(values, format=fmt, errors="coerce")


def _date(cfg: IngestConfig, column: str, form: str) -> list[Rule]:
    low = pd.Timestamp(cfg.min_date) if cfg.min_date else None
    return [
        rule(column, f"a date ({form})", NOT_NULL),
        rule(
            column,
            f"from {cfg.min_date} to {cfg.max_date}" if low is not None else f"up to {cfg.max_date}",
            BETWEEN,
            min_value=low,
            max_value=pd.Timestamp(cfg.max_date) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1),
        ),
    ]


def _check_users_file(
    table: str, id_column: str, raw: pd.DataFrame, cfg: IngestConfig, id_regex: str, id_form: str
) -> Checked:
    """A users file: ids well-formed and unique, ``age`` a number of years or empty, the other
    ``cfg.numeric_user_columns`` finite numbers or empty (the remaining columns are free strings)."""
    numeric = [c for c in cfg.numeric_user_columns if c in raw and c != "age"]
    checked = raw.assign(
        **{f"{id_column}_repeated": raw[id_column].duplicated()},
        **{f"{c}_number": _number_or_empty(raw[c]) for c in numeric},
    )
    age = [rule("age", "a number of years or empty", REGEX, regex=AGE)] if "age" in raw else []
    return check_table(
        table,
        raw,
        checked,
        [
            rule(id_column, id_form, REGEX, regex=id_regex),
            _unique(id_column),
            *age,
            *(rule(c, "a finite number or empty", IN_SET, on=f"{c}_number", value_set=[True]) for c in numeric),
        ],
    )


def _number_or_empty(values: pd.Series) -> pd.Series:
    number = pd.to_numeric(values.str.strip(), errors="coerce")
    return (values.str.strip() == "") | np.isfinite(number)


def _id(column: str) -> Rule:
    return rule(column, "non-empty, no surrounding spaces", REGEX, regex=ID)


def _unique(column: str) -> Rule:
    return rule(column, "unique (the first row is kept)", IN_SET, on=f"{column}_repeated", value_set=[False])


def _known(column: str, what: str) -> Rule:
    return rule(column, what, IN_SET, on=f"{column}_known", value_set=[True])


def _safe_path() -> Rule:
    return rule(
        "image_path",
        "empty or a relative path inside the source (no '..', no leading '/')",
        NOT_REGEX,
        regex=UNSAFE_PATH,
    )
