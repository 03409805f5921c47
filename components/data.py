"""Data components: synthetic raw data (for the demo), ingest, validate and the frozen-encoder features.

Component bodies run in the image (or a kfp.local subprocess): imports go inside them, logic lives in ``em3``.
``config`` is the pipeline's config parameter (YAML text, see em3/config.py); each stage reads its section.
"""

from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output, component

from em3.cluster import EM3_IMAGE


@component(base_image=EM3_IMAGE, install_kfp_package=False)
def generate(config: str, raw: Output[Dataset]):
    """Write the raw-layout (H&M-like) synthetic data of ``raw_synthetic`` with rendered images.

    Args:
        config: The em3 config as YAML (the pipeline's config parameter); raw_synthetic sets the sizes.

    Returns:
        raw: The raw data folder in the H&M layout (transactions_train.csv, articles.csv, customers.csv, images/);
            metadata: users, items, transactions.
    """
    from pathlib import Path

    from em3.config import config_from_yaml
    from em3.data.synthetic_hm import generate_raw_synthetic

    cfg = config_from_yaml(config, "config parameter")
    summary = generate_raw_synthetic(cfg.raw_synthetic, Path(raw.path))
    raw.metadata.update({key: summary[key] for key in ("users", "items", "transactions")})


@component(base_image=EM3_IMAGE, install_kfp_package=False)
def ingest(
    config: str,
    data_uri: str,
    tables: Output[Dataset],
    metrics: Output[Metrics],
    run_date: str = "",
    dataset_uri: str = "",
    scheduled_time: str = "",
) -> str:
    """Raw logs at ``data_uri`` (a folder or s3://bucket/prefix) → canonical Parquet tables, images, manifest.
    Returns the data hash (em3.validation.contract.data_hash), which register records on the model version.

    Args:
        config: The em3 config as YAML (the pipeline's config parameter); ingest sets format, dates, negatives.
        data_uri: The raw logs: a folder or s3://bucket/prefix, in the layout ingest.format names.
        run_date: A daily run's date (YYYY-MM-DD, an RFC 3339 time, or scheduled: the recurring run's schedule
            time): the day before it is added to the dataset at dataset_uri. Empty: the whole source.
        dataset_uri: The folder or s3:// prefix that keeps the dataset between daily runs (em3.daily).
        scheduled_time: The schedule time of a recurring run (KFP's placeholder), read when run_date is scheduled.

    Returns:
        tables: The canonical tables: interactions/ (a partition per day), items.parquet, users.parquet, images/,
            quarantine/ and manifest.json (row counts, partitions, sha256 of every source file, the parameters);
            metadata: data_hash, day (a daily run's day).
        metrics: Rows per table and per split (rows.<name>).
        Output: The data hash: sha256 of the source files, images and ingest parameters.
    """
    from pathlib import Path

    from em3.config import config_from_yaml
    from em3.daily import TABLES, day_of_run, fetch_part
    from em3.ingest import run_ingest
    from em3.validation.contract import data_hash
    from em3.workflow import log_metrics

    overrides = {"ingest.source": data_uri}
    day = day_of_run(run_date, scheduled_time)
    if day is not None:  # a daily run: the dataset so far, plus its day
        if not dataset_uri:
            raise ValueError(f"run_date {run_date!r} adds a day to a dataset: give dataset_uri")
        fetch_part(dataset_uri, TABLES, Path(tables.path))
        overrides["ingest.days"] = [day, day]
        tables.metadata["day"] = day.isoformat()
    cfg = config_from_yaml(config, "config parameter", overrides)
    manifest = run_ingest(cfg.ingest, Path(tables.path))
    log_metrics(metrics, manifest["rows"], prefix="rows.")
    log_metrics(metrics, {split: counts["rows"] for split, counts in manifest["splits"].items()}, prefix="rows.")
    tables.metadata["data_hash"] = data_hash(tables.path)
    return tables.metadata["data_hash"]


@component(base_image=EM3_IMAGE, install_kfp_package=False)
def validate(
    config: str,
    tables: Input[Dataset],
    validation: Output[Dataset],
    report: Output[Markdown],
    report_html: Output[HTML],
    metrics: Output[Metrics],
    dataset_uri: str = "",
):
    """Great Expectations checks of the tables and the drift of the new day(s) against the days before; fails
    (stopping the run, the report in its error) past ``validation.max_bad_fraction`` or on a drift check set to
    fail. Tables that pass are published to ``dataset_uri`` (a daily run's dataset), and only those.

    Args:
        config: The em3 config as YAML (the pipeline's config parameter); validation sets the limits.
        tables: The canonical tables from ingest.
        dataset_uri: The folder or s3:// prefix that keeps the dataset between daily runs (em3.daily); empty: none.

    Returns:
        validation: report.json, report.md, report.html and quarantine/ (the rejected rows, each with its reason).
        report: The validation report (markdown), shown in the UI.
        report_html: The same report as an HTML page.
        metrics: The drift checks' scores (drift_<check>), drift_warnings and drift_failures.
    """
    import shutil
    from pathlib import Path

    from em3.config import config_from_yaml
    from em3.daily import TABLES, publish_part
    from em3.validation import run_validate
    from em3.validation.report import drift_metrics
    from em3.workflow import log_metrics

    cfg = config_from_yaml(config, "config parameter")
    result = run_validate(cfg.validation, Path(tables.path), Path(validation.path))
    shutil.copyfile(Path(validation.path) / "report.md", report.path)
    shutil.copyfile(Path(validation.path) / "report.html", report_html.path)
    log_metrics(metrics, drift_metrics(result))
    if dataset_uri:
        publish_part(Path(tables.path), dataset_uri, TABLES)


@component(base_image=EM3_IMAGE, install_kfp_package=False)
def features(config: str, tables: Input[Dataset], store: Output[Dataset], dataset_uri: str = ""):
    """Frozen image and text encoders over the items table → the token store (GPU when the pod has one).

    Args:
        config: The em3 config as YAML (the pipeline's config parameter); features sets encoders and batch sizes.
        tables: The canonical tables from ingest (items.parquet and images/).
        dataset_uri: The folder or s3:// prefix that keeps the dataset between daily runs (em3.daily): its token
            store is the starting point (only new or changed items are encoded) and the new store is published there.

    Returns:
        store: The token store: image and text tokens, masks and pooled vectors per item; metadata: items,
            items_encoded, seconds.
    """
    from pathlib import Path

    import pandas as pd

    from em3.config import config_from_yaml
    from em3.daily import FEATURES, fetch_part, publish_part
    from em3.features import run_features

    cfg = config_from_yaml(config, "config parameter")
    if dataset_uri:
        fetch_part(dataset_uri, FEATURES, Path(store.path))
    items = pd.read_parquet(Path(tables.path) / "items.parquet")
    summary = run_features(cfg.features, items, Path(tables.path), Path(store.path))
    store.metadata.update({key: summary[key] for key in ("items", "items_encoded", "seconds")})
    if dataset_uri:
        publish_part(Path(store.path), dataset_uri, FEATURES)
