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
    assert loaded_cfg == cfg.model_copy(update={"model": cfg.model.with_objective_weights()})  # as it trained
    assert loaded_cfg.model.coengagement_weight is not None and loaded_cfg.model.neighbourhood_weight is not None
    test = small_data.test.rows(torch.arange(64))
    expected = predict(trained, test, small_data, 32)
    torch.testing.assert_close(predict(loaded, test, small_data, 32), expected, rtol=0, atol=0)


def test_an_incomplete_model_directory_names_what_is_missing(tmp_path):
    (tmp_path / "config.yaml").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"missing model\.safetensors, shapes\.json"):
        load_model_dir(tmp_path)


def test_a_two_stage_model_saved_before_the_missing_vectors_loads_with_them_at_zero(small_config, small_data, tmp_path):
    from safetensors.torch import load_file, save_file

    cfg = with_updates(small_config, output_dir=tmp_path, model={"variant": "two_stage"}, train={"max_steps": 3})
    trained = train(cfg, small_data).model.eval()
    weights = tmp_path / "model" / "model.safetensors"
    state = {name: value for name, value in load_file(weights).items() if ".missing." not in name}
    save_file(state, weights)  # the file an older em3 wrote
    loaded, _ = load_model_dir(tmp_path / "model")
    assert all((vector == 0).all() for vector in loaded.content.missing.values())
    with torch.no_grad():
        for vector in trained.content.missing.values():
            vector.zero_()
    test = small_data.test.rows(torch.arange(64))
    torch.testing.assert_close(predict(loaded, test, small_data, 32), predict(trained, test, small_data, 32))

    state.pop("item_embed.weight")  # any other missing weight is an error
    save_file(state, weights)
    with pytest.raises(ValueError, match="does not fit the model its config describes"):
        load_model_dir(tmp_path / "model")


def test_a_model_saved_before_the_similarity_inputs_summary_tokens_and_modality_queries_loads_as_it_was_trained(
    small_config, small_data, tmp_path
):
    """An older config.yaml has neither model.history_similarity, model.content_tokens, model.modality_dropout nor
    model.fqformer.modality_queries: the model was trained without similarity inputs, on the fine tokens only, with
    the shared queries alone, and must load so, not with today's defaults."""
    import yaml

    shared_queries_only = small_config.model.fqformer.model_copy(update={"modality_queries": False})
    cfg = with_updates(
        small_config,
        output_dir=tmp_path,
        train={"max_steps": 3},
        model={
            "history_similarity": False,
            "content_tokens": "fine",
            "modality_dropout": 0.0,
            "fqformer": shared_queries_only,
        },
    )
    trained = train(cfg, small_data).model.eval()
    config = tmp_path / "model" / "config.yaml"
    values = yaml.safe_load(config.read_text())
    del values["model"]["history_similarity"], values["model"]["content_tokens"], values["model"]["modality_dropout"]
    del values["model"]["fqformer"]["modality_queries"], values["model"]["modality_dropout_text_share"]
    config.write_text(yaml.safe_dump(values))  # the file an older em3 wrote
    loaded, loaded_cfg = load_model_dir(tmp_path / "model")
    model = loaded_cfg.model
    assert (model.history_similarity, model.content_tokens, model.modality_dropout) == (False, "fine", 0.0)
    assert model.modality_dropout_text_share == 0.5, "the even odds every model before the setting was trained with"
    assert not model.fqformer.modality_queries
    test = small_data.test.rows(torch.arange(64))
    expected = predict(trained, test, small_data, 32)
    torch.testing.assert_close(predict(loaded, test, small_data, 32), expected, rtol=0, atol=0)
