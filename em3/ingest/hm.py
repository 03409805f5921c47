"""The Kaggle H&M layout: ``transactions_train.csv``, ``articles.csv``, ``customers.csv`` and
``images/<first 3 digits>/<article_id>.jpg``. Ids stay strings (article ids keep their leading zero)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from em3.config import IngestConfig
from em3.ingest.raw import RawData, fetch_table
from em3.ingest.sources import Source
from em3.validation.suites import check_articles, check_customers, check_transactions

TRANSACTIONS = ("t_dat", "customer_id", "article_id", "price", "sales_channel_id")
ARTICLES = ("article_id", "prod_name", "detail_desc")  # the other article columns are kept as categoricals
CUSTOMERS = ("customer_id", "age")  # the other customer columns are kept as strings


def read_hm(source: Source, cfg: IngestConfig, scratch: Path) -> RawData:
    articles_raw, articles_sha = fetch_table(source, "articles.csv", scratch, ARTICLES, extra=True)
    customers_raw, customers_sha = fetch_table(source, "customers.csv", scratch, CUSTOMERS, extra=True)
    transactions_raw, transactions_sha = fetch_table(source, "transactions_train.csv", scratch, TRANSACTIONS)

    articles = check_articles(articles_raw, cfg)
    customers = check_customers(customers_raw)
    transactions = check_transactions(transactions_raw, cfg, articles.kept["article_id"], customers.kept["customer_id"])

    kept = articles.kept
    items = pd.DataFrame(
        {
            "item_id": kept["article_id"],
            "text": kept["text"],
            "image_key": kept["article_id"].str[:3] + "/" + kept["article_id"] + ".jpg",
        }
    ).join(kept[[c for c in articles_raw.columns if c not in ARTICLES]])
    users = customers.kept[list(customers_raw.columns)].rename(columns={"customer_id": "user_id"})
    users["age"] = pd.to_numeric(users["age"], errors="coerce").astype(float)  # "" -> NaN
    sold = transactions.kept
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
    return RawData(events, items, users, [articles, customers, transactions], files, "images", purchases=True)
