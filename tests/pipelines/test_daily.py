"""The daily loop (issue 24 point 5): a run's day from its run date, the dataset kept between daily runs, a shift
injected into a replayed day, the schedule request as kfp's own client sends it, and (slow) a replay through
kfp.local: a warm-started day promoted on the newest day, a shifted day stopped by validate."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from em3.cli import main
from em3.config import ConfigError, IngestConfig, ValidateConfig, parse_config
from em3.daily import FEATURES, TABLES, day_of_run, fetch_part, publish_part
from em3.replay import best_point, plotted, shifted_source, source_days, steps_to_reach
from em3.validation.contract import interaction_files
from em3.validation.drift import no_drift_section
from em3.validation.modalities import content_summary
from em3.validation.report import build_report
from pipelines.em3_run import _stopped_at, daily_config, schedule_daily
from tests.pipelines.conftest import TINY, tiny_config


def test_a_run_adds_the_day_before_its_run_date() -> None:
    assert day_of_run("") is None, "no run date: the whole source"
    assert day_of_run("2020-09-22") == date(2020, 9, 21)
    assert day_of_run("scheduled", "2020-09-22T03:00:00Z") == date(2020, 9, 21)  # KFP's schedule time, UTC
    with pytest.raises(ConfigError, match=r"has none \('\{\{\$.pipeline_job_schedule_time_utc\}\}'\)"):
        day_of_run("scheduled", "{{$.pipeline_job_schedule_time_utc}}")
    with pytest.raises(ConfigError, match=r"run_date 'yesterday': expected a date"):
        day_of_run("yesterday")


def test_a_replayed_day_keeps_the_windows_and_starting_point_that_its_config_sets() -> None:
    default = daily_config(parse_config({}, "test"))
    assert (default.data.split, default.data.valid_days, default.data.test_days) == ("newest_days", 1, 1)
    assert default.train.init_from == "models:/em3@champion"
    own = daily_config(parse_config({"data": {"valid_days": 3}, "train": {"init_from": "runs/v7"}}, "test"))
    assert (own.data.split, own.data.valid_days, own.train.init_from) == ("newest_days", 3, "runs/v7")


def test_a_part_is_published_whole_and_a_fresh_run_starts_from_it(tmp_path: Path) -> None:
    dataset, tables = tmp_path / "dataset", tmp_path / "tables"
    assert not fetch_part(str(dataset), TABLES, tmp_path / "nothing"), "no dataset yet"
    (tables / "interactions").mkdir(parents=True)
    (tables / "manifest.json").write_text("{}")
    (tables / "interactions" / "part-0.parquet").write_bytes(b"rows")
    publish_part(tables, str(dataset), TABLES)
    (tables / "interactions" / "part-0.parquet").unlink()  # the run's own folder goes; the dataset keeps its copy
    assert (dataset / TABLES / "interactions" / "part-0.parquet").read_bytes() == b"rows"
    assert fetch_part(str(dataset), TABLES, tmp_path / "next")
    assert (tmp_path / "next" / "interactions" / "part-0.parquet").read_bytes() == b"rows"
    (dataset / FEATURES).mkdir()
    (dataset / FEATURES / "stray").write_text("not a store")
    with pytest.raises(Exception, match=r"not a previous output \(no index.json\)"):
        publish_part(tables, str(dataset), FEATURES)  # never replaces what is not a store


def native_source(root: Path) -> IngestConfig:
    """A native log over four days (100 rows a day, 20 % clicks) with one photo per item."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(b"jpeg")
    days = [pd.Timestamp(2020, 3, d) for d in (1, 2, 3, 4)]
    log = pd.DataFrame(
        {
            "user_id": [f"u{i % 10}" for i in range(400)],
            "item_id": "a",
            "ts": [day + pd.Timedelta(minutes=i) for day in days for i in range(100)],
            "label": (rng.random(400) < 0.2).astype(int),
        }
    )
    log.to_parquet(root / "impressions.parquet", index=False)
    return IngestConfig(source=str(root), format="native", native_log="impressions.parquet")


def test_a_shift_changes_only_its_day(tmp_path: Path) -> None:
    cfg = native_source(tmp_path / "raw")
    assert source_days(cfg) == [date(2020, 3, d) for d in (1, 2, 3, 4)]
    before = pd.read_parquet(tmp_path / "raw" / "impressions.parquet")
    shifted = shifted_source(cfg, date(2020, 3, 3), "labels", tmp_path / "labels")
    after = pd.read_parquet(shifted / "impressions.parquet")
    on_day = before["ts"].dt.normalize() == pd.Timestamp(2020, 3, 3)
    assert after.loc[on_day, "label"].mean() == pytest.approx(3 * before.loc[on_day, "label"].mean(), abs=0.01)
    pd.testing.assert_frame_equal(after[~on_day], before[~on_day])
    assert (after.loc[on_day, "label"] >= before.loc[on_day, "label"]).all(), "only negatives turned"
    photos = shifted_source(cfg, date(2020, 3, 3), "photos", tmp_path / "photos")
    assert not (photos / "images").exists() and (photos / "impressions.parquet").is_file()
    assert (tmp_path / "raw" / "images" / "a.jpg").is_file(), "the source itself is untouched"


def test_the_steps_a_warm_start_takes_to_reach_the_scratch_model() -> None:
    scratch = [{"step": 10, "auc": 0.60}, {"step": 20, "auc": 0.65}, {"step": 30, "auc": 0.64}]
    warm = [{"step": 10, "auc": 0.6485}, {"step": 20, "auc": 0.66}]
    assert best_point(scratch) == (0.65, 20)
    assert steps_to_reach(warm, 0.65) == 10, "within 0.002 of the scratch model's best"
    assert steps_to_reach(warm, 0.70) is None
    days = [{"steps_to_reach": 0}, {"steps_to_reach": 92}, {"outcome": "stopped by validate"}]
    assert plotted(days, "steps_to_reach")[:2] == [0.0, 92.0] and np.isnan(plotted(days, "steps_to_reach")[2])


class KubeflowApi(BaseHTTPRequestHandler):
    """The endpoints of the Kubeflow Pipelines API that kfp.Client calls to schedule a run; records each request."""

    requests: list[tuple[str, str, dict]] = []

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, {}))
        self._reply({"multi_user": False} if "healthz" in self.path else {"experiments": []})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, body))
        if self.path.startswith("/apis/v2beta1/experiments"):
            self._reply({"experiment_id": "exp-7", **body})
        else:
            self._reply({"recurring_run_id": "rr-42", **body})

    def _reply(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def kubeflow_api():
    """A local HTTP endpoint that answers like the Kubeflow Pipelines API (no KFP server runs here)."""
    KubeflowApi.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), KubeflowApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", KubeflowApi.requests
    server.shutdown()


def test_the_schedule_request_is_a_daily_recurring_run_of_the_compiled_pipeline(kubeflow_api, tmp_path) -> None:
    host, requests = kubeflow_api
    cfg = tiny_config(tmp_path, tracking_uri="http://mlflow.example:5000")
    recurring = schedule_daily(host, cfg, "0 3 * * *", "/mnt/em3/dataset", ["em3"], "nightly", "em3-daily")
    assert recurring == "rr-42"
    (_, path, experiment), (_, runs_path, body) = [r for r in requests if r[0] == "POST"]
    assert path == "/apis/v2beta1/experiments" and experiment["display_name"] == "nightly"
    assert runs_path == "/apis/v2beta1/recurringruns"
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}, "KFP's six fields, seconds first"
    assert (body["experiment_id"], body["display_name"], body["mode"]) == ("exp-7", "em3-daily", "ENABLE")
    assert body["max_concurrency"] == 1 and body["no_catchup"] is True
    parameters = body["runtime_config"]["parameters"]
    assert (parameters["run_date"], parameters["dataset_uri"], parameters["variants"]) == (
        "scheduled",
        "/mnt/em3/dataset",
        ["em3"],
    )
    spec = body["pipeline_spec"]["pipeline_spec"]  # and its Kubernetes settings beside it, platform_spec
    assert spec["pipelineInfo"]["name"] == "em3"
    ingest_inputs = spec["root"]["dag"]["tasks"]["ingest"]["inputs"]["parameters"]
    assert ingest_inputs["scheduled_time"]["runtimeValue"]["constant"] == "{{$.pipeline_job_schedule_time_utc}}"
    with pytest.raises(ConfigError, match=r"expected five fields"):
        schedule_daily(host, cfg, "0 0 3 * * *", "/mnt/em3/dataset")
    with pytest.raises(ConfigError, match=r"registry.tracking_uri"):
        schedule_daily(host, tiny_config(tmp_path), "0 3 * * *", "/mnt/em3/dataset")


def test_a_day_stopped_by_validate_says_which_check(tmp_path: Path) -> None:
    check = {"check": "label_rate", "column": "label", "score": 3.1, "new": 0.6, "reference": 0.19, "limit": 2.0}
    drift = {**no_drift_section(""), "checks": [{**check, "action": "fail", "status": "fail"}], "passed": False}
    items = pd.DataFrame({"item_id": ["a"], "text": ["x"], "image_path": ["images/a.jpg"]})
    report = build_report({}, ValidateConfig(), content_summary(items, pd.Series(dtype=int)), drift)
    (tmp_path / "report.json").write_text(json.dumps(report))
    message = f"Pipeline 'em3' finished with status FAILURE.\n  |  Report: {tmp_path}/report.md\nFull log: x"
    expected = "drift: label_rate of label is 3.1 (new 0.6, reference 0.19; limit 2)"
    assert _stopped_at(message) == f"stopped by validate: {expected}"
    assert _stopped_at("Pipeline 'em3' failed at train") == "failed: Pipeline 'em3' failed at train"


@pytest.mark.slow
def test_a_replay_warm_starts_promotes_on_the_newest_day_and_stops_a_shifted_day(tmp_path, capsys) -> None:
    from em3.data.synthetic_impressions import generate_native_synthetic

    raw = tmp_path / "raw"
    settings = {
        **TINY,
        "raw_synthetic": {"n_users": 60, "n_items": 120, "n_days": 20, "late_release_days": 5, "image_size": 64},
        "ingest": {
            "source": str(raw),
            "format": "native",
            "native_log": "impressions.parquet",
            "native_items": "items.parquet",
        },
        "data": {"source": "tables"},
        "validation": {"drift": {"min_rows": 100}},
        "train": {**TINY["train"], "epochs": 3},
        "registry": {
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "artifact_location": str(tmp_path / "a"),
            "min_auc": 0.0,
        },
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings))
    generate_native_synthetic(parse_config(settings, "test").raw_synthetic, 12000, raw)
    root = tmp_path / "replay"
    code = main(
        [
            "pipeline",
            "replay",
            "--config",
            str(config),
            "--days",
            "2",
            "--shift",
            "1:labels",
            "--pipeline-root",
            str(root),
        ]
    )
    assert code in (0, None)
    rows = json.loads((root / "replay.json").read_text())
    first, shifted = rows
    assert first["outcome"] == "registered" and "[champion v1 scored on this run's test rows]" in first["reason"]
    assert first["warm_start"]["item_embed"]["kept"] > 0, "warm-started from the first champion, by id"
    assert first["steps_to_reach"] is not None and first["scratch_steps"] > 0
    assert 0 <= first["champion_auc"] <= 1 and 0 <= first["start_valid_auc"] <= 1, "the gate's figure, the start's"
    assert shifted["outcome"].startswith("stopped by validate: drift: label_rate of label is")
    days = list(interaction_files(root / "dataset" / TABLES))
    assert days[-1].isoformat() == first["day"], "the shifted day never reached the dataset"
    assert (root / "replay.png").read_bytes()[:4] == b"\x89PNG"
    assert "| day | outcome |" in capsys.readouterr().out
