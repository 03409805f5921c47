"""`bench/scale.py` on two tiny sizes (generate and ingest only) writes the documented JSON with sane figures, and
its per-process peak-memory measurement sees what a child allocates."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEASURED = {"seconds", "rows_per_s", "peak_rss_mb", "peak_anon_mb", "peak_file_mb"}
RECORD_KEYS = {"impressions", "items", "users", "stage", "rows"} | MEASURED
GROWTH_KEYS = {"stage", "from", "to", "rows_ratio", "seconds_ratio", "cost_growth", "marginal_rows_per_s", "rss_ratio"}


def scale_module():
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_scale(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/scale.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_two_tiny_sizes_write_rows_per_second_peak_memory_and_growth(tmp_path):
    out, work = tmp_path / "scale.json", tmp_path / "work"
    command = [
        sys.executable,
        "bench/scale.py",
        "--sizes",
        "200",
        "100",
        "--last-stage",
        "ingest",
        "--work-dir",
        str(work),
        "--out",
        str(out),
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())

    assert result.keys() == {"command", "seconds", "machine", "settings", "records", "growth"}
    assert result["settings"]["sizes"] == [100, 200] and result["settings"]["stages"] == ["ingest"]
    assert [(r["impressions"], r["stage"]) for r in result["records"]] == [
        (100, "generate"),
        (100, "ingest"),
        (200, "generate"),
        (200, "ingest"),
    ]
    for record in result["records"]:
        assert record.keys() == RECORD_KEYS, record
        assert all(math.isfinite(record[key]) and record[key] > 0 for key in MEASURED), record
        assert record["rows"] == record["impressions"] and record["items"] == record["impressions"] // 10
        # rows_per_s is rounded to 0.1 (abs 0.05: on a starved machine 100 rows can take 50 s, 2 rows/s) and
        # seconds to 0.01 (rel 0.02 covers it once the stage takes over half a second)
        assert record["rows_per_s"] == pytest.approx(record["rows"] / record["seconds"], rel=0.02, abs=0.05)
        assert 50 < record["peak_rss_mb"] < 4096, "a Python process with pandas, well under the 4 GB bound"
    manifest = json.loads((work / "200" / "data" / "tables" / "manifest.json").read_text())
    assert 190 <= manifest["rows"]["interactions"] <= 200  # one row per (user, item, day): rare repeats merge
    assert manifest["rows"]["items"] == 20

    pairs = [(g["stage"], g["from"], g["to"]) for g in result["growth"]]
    assert pairs == [("generate", 100, 200), ("ingest", 100, 200)]
    for g in result["growth"]:
        assert g.keys() == GROWTH_KEYS and g["rows_ratio"] == 2.0
        assert g["cost_growth"] == pytest.approx(g["seconds_ratio"] / 2.0, abs=0.01)
        assert g["marginal_rows_per_s"] is None or g["marginal_rows_per_s"] > 0
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # resumed in the same folders from a later stage: the generated log is kept, nothing is generated again
    stages = ["--first-stage", "validate", "--last-stage", "validate", "--work-dir", str(work), "--out", str(out)]
    run = run_scale("--sizes", "100", *stages)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert [(r["impressions"], r["stage"]) for r in json.loads(out.read_text())["records"]] == [(100, "validate")]
    run = run_scale("--sizes", "300", *stages)
    assert run.returncode != 0 and "holds no generated data; start at generate" in run.stderr


def test_peak_memory_of_a_stage_process_is_its_own_and_failures_show_the_log(tmp_path):
    hold = "import time; block = bytearray(300 << 20); block[::4096] = b'x' * len(block[::4096]); time.sleep(2)"
    # measured from a small process, as bench/scale.py is one: a child's ru_maxrss counts its spawner's RSS
    log = tmp_path / "hold.log"
    probe = (
        f"import json, sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import scale; from pathlib import Path; "
        f"print(json.dumps(scale.run_measured([sys.executable, '-c', {hold!r}], Path({str(log)!r}))))"
    )
    measured = json.loads(subprocess.check_output([sys.executable, "-c", probe], text=True))
    assert 300 <= measured["peak_rss_mb"] < 400, measured
    # polled every 0.2 s: a lower bound (a starved poller can miss the peak, so only its sanity is asserted)
    assert 0 < measured["peak_anon_mb"] <= measured["peak_rss_mb"] and measured["peak_file_mb"] > 0, measured
    assert measured["seconds"] >= 2

    with pytest.raises(RuntimeError, match=r"(?s)exited with 3.*no such stage"):
        scale_module().run_measured([sys.executable, "-c", "print('no such stage'); raise SystemExit(3)"], log)


def test_growth_compares_each_size_with_the_one_before_and_skips_failed_stages():
    def record(impressions: int, seconds: float, rss: float) -> dict:
        return {
            "stage": "ingest",
            "impressions": impressions,
            "rows": impressions,
            "seconds": seconds,
            "peak_rss_mb": rss,
        }

    records = [record(1000, 10.0, 300.0), record(10_000, 20.0, 330.0), record(100_000, 220.0, 660.0)]
    failed = {"stage": "ingest", "impressions": 1_000_000, "rows": 1_000_000, "error": "killed"}
    small, large = scale_module().growth([*records, failed])
    assert (small["from"], small["to"], large["from"], large["to"]) == (1000, 10_000, 10_000, 100_000)
    assert small["cost_growth"] == 0.2 and small["marginal_rows_per_s"] == 900.0 and small["rss_ratio"] == 1.1
    assert large["cost_growth"] == 1.1 and large["marginal_rows_per_s"] == 450.0 and large["rss_ratio"] == 2.0
