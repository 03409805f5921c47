"""The Kaggle H&M layout: ``transactions_train.csv``, ``articles.csv``, ``customers.csv`` and
``images/<first 3 digits>/<article_id>.jpg``. Ids stay strings (article ids keep their leading zero; an id that
lost its leading zeros in a spreadsheet is padded back, counted in the manifest's ``ids_padded``). Customer ids
are 64 hex digits, which a spreadsheet keeps as text: they are not padded. An
article is an item when it has an ``articles.csv`` row or a photo (em3.ingest.items); a customer is a user
when it has a ``customers.csv`` row or a purchase (without a row, its attributes are unknown)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from em3.config import IngestConfig
from em3.ingest.items import IMAGES_DIR, build_items, hm_photos
from em3.ingest.raw import RawData, fetch_table
from em3.ingest.users import user_table
from em3.sources import Source
from em3.validation.suites import SHORT_ARTICLE_ID, check_articles, check_customers, check_transactions, hm_text

TRANSACTIONS = ("t_dat", "customer_id", "article_id", "price", "sales_channel_id")
ARTICLES = ("article_id", "prod_name", "detail_desc")  # the other article columns are kept as categoricals
CUSTOMERS = ("customer_id", "age")  # the other customer columns are kept (em3.ingest.users)


def read_hm(source: Source, cfg: IngestConfig, scratch: Path) -> RawData:
    articles_raw, articles_sha = fetch_table(source, "articles.csv", scratch, ARTICLES, extra=True)
    customers_raw, customers_sha = fetch_table(source, "customers.csv", scratch, CUSTOMERS, extra=True)
    transactions_raw, transactions_sha = fetch_table(source, "transactions_train.csv", scratch, TRANSACTIONS)
    photos = hm_photos(source.list_files(IMAGES_DIR))

    articles = check_articles(articles_raw, cfg)
    customers = check_customers(customers_raw, cfg)
    kept = articles.kept
    rows = pd.DataFrame({"item_id": kept["article_id"], "text": hm_text(kept), "image_key": ""}).join(
        kept[[c for c in articles_raw.columns if c not in ARTICLES]]
    )
    items, texts, catalogue = build_items(rows, photos, cfg)
    transactions = check_transactions(transactions_raw, cfg, items["item_id"])

    sold = transactions.kept
    user_rows = customers.kept[list(customers_raw.columns)].rename(columns={"customer_id": "user_id"})
    users = user_table(user_rows, cfg, sold["customer_id"])
    events = pd.DataFrame(
        {
            "user_id": sold["customer_id"],
            "item_id": sold["article_id"],
            "ts": sold["t_dat"],
            "label": 1,
            "units": 1,
            "sales_channel_id": sold["sales_channel_id"].astype(int),
        }
    )
    files = {
        "articles.csv": articles_sha,
        "customers.csv": customers_sha,
        "transactions_train.csv": transactions_sha,
    }
    checks = [articles, texts, customers, transactions]
    repairs = {
        "ids_padded": {
            name: int(raw["article_id"].str.fullmatch(SHORT_ARTICLE_ID).sum())
            for name, raw in (("articles.csv", articles_raw), ("transactions_train.csv", transactions_raw))
        },
        "dates_with_time": {"transactions_train.csv": int(sold["t_dat_had_time"].sum())},
        "prices_unknown": int(sold["price"].isna().sum()),
    }
    return RawData(events, items, users, checks, files, IMAGES_DIR, True, "transactions_train.csv", catalogue, repairs)
