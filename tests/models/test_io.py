import pytest
import torch

from em3.models.io import load_model_dir
from em3.train import train
from em3.train.trainer import predict
from tests.conftest import with_updates


@pytest.mark.parametrize("variant", ["em3", "two_stage"])
def test_a_saved_model_rebuilds_with_identical_predictions(small_config, small_data, tmp_path, variant):
    cfg = with_updates(small_config, output_dir=tmp_path, model={"variant": variant}, train={"max_steps": 5})
    trained = train(cfg, small_data).model.eval()
    loaded, loaded_cfg = load_model_dir(tmp_path / "model")
    assert loaded_cfg == cfg
    test = small_data.test.rows(torch.arange(64))
    expected = predict(trained, test, small_data, 32)
    torch.testing.assert_close(predict(loaded, test, small_data, 32), expected, rtol=0, atol=0)


def test_an_incomplete_model_directory_names_what_is_missing(tmp_path):
    (tmp_path / "config.yaml").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"missing model\.safetensors, shapes\.json"):
        load_model_dir(tmp_path)
