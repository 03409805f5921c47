"""``two_stage_mlp`` (DESIGN §3): two_stage whose projection of the frozen pooled vectors is an MLP as deep and wide
as em3's content head; ``linear`` keeps two_stage's parameters (and its saved models) as they were."""

import torch
import torch.nn.functional as F

from em3.data.dataset import make_batch
from em3.models import Ranker
from em3.train.trainer import model_shapes
from tests.conftest import with_updates


def rankers(small_config, small_data) -> dict[str, Ranker]:
    out = {}
    for projection in ("linear", "mlp"):
        torch.manual_seed(0)
        cfg = with_updates(small_config, model={"variant": "two_stage", "pooled_projection": projection})
        out[projection] = Ranker(cfg.model, model_shapes(small_data))
    return out


def test_the_mlp_is_the_linear_projection_then_gelu_and_a_second_layer(small_config, small_data):
    models = rankers(small_config, small_data)
    linear, mlp = models["linear"].content, models["mlp"].content
    extra = set(models["mlp"].state_dict()) - set(models["linear"].state_dict())
    assert {name.split("head.")[-1] for name in extra} == {"1.weight", "1.bias"}, "only the second layer is new"
    assert isinstance(mlp.head[0], torch.nn.GELU) and (mlp.head[1].in_features, mlp.head[1].out_features) == (16, 16)
    content = small_data.store.gather(torch.arange(1, 9))
    mlp.proj.load_state_dict(linear.proj.state_dict())
    expected = F.linear(F.gelu(linear(content)), mlp.head[1].weight, mlp.head[1].bias)
    assert torch.allclose(mlp(content), expected, atol=1e-6)


def test_the_click_loss_trains_the_second_layer(small_config, small_data):
    model = rankers(small_config, small_data)["mlp"].train()
    batch = make_batch(small_data.train, torch.arange(64), small_data.store, model.content_inputs)
    model(batch)[1]["loss"].backward()
    assert model.content.head[1].weight.grad.abs().sum() > 0 and model.content.proj.weight.grad.abs().sum() > 0
