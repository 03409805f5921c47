"""Every variant on both backbones learns the synthetic click signal; em3 helps cold-start rows."""

import pytest

from em3.train import train
from tests.conftest import with_updates


@pytest.fixture(scope="module")
def trained(small_config, small_data, tmp_path_factory):
    """Train each (variant, backbone) once per module, on demand."""
    runs: dict[tuple[str, str], dict] = {}
    base = with_updates(small_config, train={"epochs": 6})

    def get(variant: str, backbone: str) -> dict:
        if (variant, backbone) not in runs:
            out = tmp_path_factory.mktemp(f"{variant}_{backbone}")
            cfg = with_updates(base, output_dir=out, model={"variant": variant, "backbone": backbone})
            runs[variant, backbone] = {"out": out, **train(cfg, small_data).metrics}
        return runs[variant, backbone]

    return get


@pytest.mark.parametrize("backbone", ["din", "dcn"])
@pytest.mark.parametrize("variant", ["id_only", "two_stage", "em3"])
def test_variant_learns_the_synthetic_signal(trained, variant, backbone):
    run = trained(variant, backbone)
    assert run["test"]["auc"] > 0.6, run["test"]
    assert (run["out"] / "metrics" / "train.json").exists()
    assert (run["out"] / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("backbone", ["din", "dcn"])
def test_em3_beats_id_only_on_cold_start_rows(trained, backbone):
    em3, id_only = trained("em3", backbone)["test"], trained("id_only", backbone)["test"]
    assert em3["cold_rows"] > 100
    assert em3["cold_auc"] > id_only["cold_auc"] + 0.03, (em3, id_only)
