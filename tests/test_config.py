from pathlib import Path

import pytest

from em3.config import EM3_OBJECTIVE_WEIGHTS, Config, ConfigError, ModelConfig, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_unknown_key_is_rejected_naming_the_key_and_the_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("model:\n  fusoin: mean\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value) and "model.fusoin" in str(error.value)


def test_invalid_value_names_the_key_and_the_value(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  history_mode: partial\n")
    with pytest.raises(ConfigError, match=r"model\.history_mode.*'partial'"):
        load_config(path)


def test_heads_must_divide_the_width(tmp_path):
    path = tmp_path / "heads.yaml"
    path.write_text("model:\n  fqformer: {d_model: 30, n_heads: 4}\n")
    with pytest.raises(ConfigError, match="divisible"):
        load_config(path)


def test_overrides_are_applied_and_validated(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("name: x\n")
    cfg = load_config(path, {"model.backbone": "dcn", "train.lr": 0.01})
    assert (cfg.model.backbone, cfg.train.lr, cfg.name) == ("dcn", 0.01, "x")
    with pytest.raises(ConfigError, match="model.backbone"):
        load_config(path, {"model.backbone": "transformer"})


def test_missing_file_and_non_mapping_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_empty_file_gives_the_embedded_defaults(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml") == Config()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert str(cfg.output_dir).endswith(path.stem)


def test_a_config_writes_out_the_objective_weights_its_variant_trains_with():
    """Unset weights follow the variant's default at training time; written out, a saved config keeps saying what
    trained after a default changes."""
    cases = {
        ("em3", None): EM3_OBJECTIVE_WEIGHTS,
        ("two_stage", None): dict.fromkeys(EM3_OBJECTIVE_WEIGHTS, 0.0),
        ("two_stage", 0.25): dict.fromkeys(EM3_OBJECTIVE_WEIGHTS, 0.25),
        ("em3", 0.0): dict.fromkeys(EM3_OBJECTIVE_WEIGHTS, 0.0),
    }
    for (variant, weight), expected in cases.items():
        model = ModelConfig(variant=variant, coengagement_weight=weight, neighbourhood_weight=weight)
        written = model.with_objective_weights()
        assert {name: getattr(written, name) for name in EM3_OBJECTIVE_WEIGHTS} == expected, (variant, weight)
        assert written.coengagement_loss_weight == model.coengagement_loss_weight
        assert written.neighbourhood_loss_weight == model.neighbourhood_loss_weight
