"""The expectation suites: raw inputs (checked by ingest before anything is built from them) and the canonical
tables (checked by validate). Each ``check_*`` parses its table to types, adds helper columns for what GX has
no expectation for (an id is known, a key is repeated, an image decodes) and quarantines the failing rows.

Date range and text length come from the ``IngestConfig`` that built the data (validate reads it from the
manifest), so both stages apply the same contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from tqdm.contrib.concurrent import thread_map

from em3.config import IngestConfig
from em3.validation.contract import SPLITS, UNSAFE_PATH, assign_split, read_image_sums
from em3.validation.engine import Checked, Rule, check_table, rule
from em3.validation.images import IO_WORKERS, file_sha256, image_problem

ARTICLE_ID = r"^\d{10}$"
CUSTOMER_ID = r"^[0-9a-f]{64}$"
ID = r"^\S(?:.*\S)?$"  # non-empty, no surrounding whitespace
SMALL_INT = r"^\d{1,4}$"
AGE = r"^(?:\d{1,3}(?:\.\d+)?)?$"
LABEL = r"^[01]$"

REGEX = "expect_column_values_to_match_regex"
NOT_REGEX = "expect_column_values_to_not_match_regex"
NOT_NULL = "expect_column_values_to_not_be_null"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
LENGTH = "expect_column_value_lengths_to_be_between"


# -- raw H&M -------------------------------------------------------------------------------------------------


def hm_text(articles: pd.DataFrame) -> pd.Series:
    """An H&M article's text: ``prod_name. detail_desc`` (or the name alone)."""
    name, desc = articles["prod_name"].str.strip(), articles["detail_desc"].str.strip()
    return (name + ". " + desc).where(desc != "", name)


def check_articles(raw: pd.DataFrame, cfg: IngestConfig) -> Checked:
    checked = raw.assign(text=hm_text(raw), article_id_repeated=raw["article_id"].duplicated())
    return check_table(
        "articles",
        raw,
        checked,
        [
            rule("article_id", "10 digits", REGEX, regex=ARTICLE_ID),
            _unique("article_id"),
            _text(cfg, "prod_name + detail_desc"),
        ],
    )


def check_customers(raw: pd.DataFrame) -> Checked:
    checked = raw.assign(customer_id_repeated=raw["customer_id"].duplicated())
    return check_table(
        "customers",
        raw,
        checked,
        [
            rule("customer_id", "64 lowercase hex digits", REGEX, regex=CUSTOMER_ID),
            _unique("customer_id"),
            rule("age", "a number of years or empty", REGEX, regex=AGE),
        ],
    )


def check_transactions(
    raw: pd.DataFrame, cfg: IngestConfig, article_ids: Iterable[str], customer_ids: Iterable[str]
) -> Checked:
    checked = raw.assign(
        t_dat=_dates(raw["t_dat"], "%Y-%m-%d"),
        price=pd.to_numeric(raw["price"], errors="coerce"),
        customer_id_known=raw["customer_id"].isin(customer_ids),
        article_id_known=raw["article_id"].isin(article_ids),
    )
    return check_table(
        "transactions",
        raw,
        checked,
        [
            *_date(cfg, "t_dat", "YYYY-MM-DD"),
            rule("customer_id", "64 lowercase hex digits", REGEX, regex=CUSTOMER_ID),
            _known("customer_id", "a valid customer of customers.csv"),
            rule("article_id", "10 digits", REGEX, regex=ARTICLE_ID),
            _known("article_id", "a valid article of articles.csv"),
            rule("price", "a number", NOT_NULL),
            rule("price", "non-negative", BETWEEN, min_value=0),
            rule("sales_channel_id", "an integer 0-9999", REGEX, regex=SMALL_INT),
        ],
    )


# -- raw native ----------------------------------------------------------------------------------------------


def check_native_items(raw: pd.DataFrame, cfg: IngestConfig) -> Checked:
    checked = raw.assign(item_id_repeated=raw["item_id"].duplicated())
    return check_table(
        "items",
        raw,
        checked,
        [
            _id("item_id"),
            _unique("item_id"),
            _text(cfg, "text"),
            _safe_path(),
        ],
    )


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
            _known("item_id", "a valid item of the items file"),
            *_date(cfg, "ts", "ISO 8601"),
            rule("label", "0 or 1", REGEX, regex=LABEL),
            *counts,
        ],
    )


def check_images(images: pd.DataFrame) -> Checked:
    """``images``: one row per item with an image (``item_id``, source ``image_path``, ``problem``, "" if
    none)."""
    return check_table(
        "images",
        images,
        images,
        [
            rule("image_path", "an image file that exists and decodes", IN_SET, on="problem", value_set=[""]),
        ],
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
            *_date(cfg, "ts", "a date"),
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
        return image_problem(path)

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
            _text(cfg, "text"),
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
    """Days; NaT where a value does not parse. ISO 8601 times are taken in UTC and truncated to the day."""
    if fmt == "ISO8601":
        return pd.to_datetime(values, format=fmt, errors="coerce", utc=True).dt.tz_localize(None).dt.floor("D")
    return pd.to_datetime(values, format=fmt, errors="coerce")


def _date(cfg: IngestConfig, column: str, form: str) -> list[Rule]:
    return [
        rule(column, f"a date ({form})", NOT_NULL),
        rule(
            column,
            f"from {cfg.min_date} to {cfg.max_date}",
            BETWEEN,
            min_value=pd.Timestamp(cfg.min_date),
            max_value=pd.Timestamp(cfg.max_date),
        ),
    ]


def _id(column: str) -> Rule:
    return rule(column, "non-empty, no surrounding spaces", REGEX, regex=ID)


def _unique(column: str) -> Rule:
    return rule(column, "unique (the first row is kept)", IN_SET, on=f"{column}_repeated", value_set=[False])


def _known(column: str, what: str) -> Rule:
    return rule(column, what, IN_SET, on=f"{column}_known", value_set=[True])


def _text(cfg: IngestConfig, what: str) -> Rule:
    return rule(
        "text",
        f"{what}: 1 to {cfg.max_text_chars} characters",
        LENGTH,
        min_value=1,
        max_value=cfg.max_text_chars,
    )


def _safe_path() -> Rule:
    return rule(
        "image_path",
        "empty or a relative path inside the source (no '..', no leading '/')",
        NOT_REGEX,
        regex=UNSAFE_PATH,
    )
