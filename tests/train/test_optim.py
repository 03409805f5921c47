"""The optimiser: the learning-rate schedule (linear warm-up, then constant or cosine decay, a pure function of the
step), row-wise updates of the ID tables and the clipping of sparse gradients."""

import math

import pytest
import torch

from em3.config import TrainConfig
from em3.data.dataset import make_batch
from em3.models import Ranker
from em3.train import train
from em3.train.optim import clip_gradients, make_optimizer, set_learning_rate
from em3.train.trainer import model_shapes, optimisation_step
from tests.conftest import with_updates

CPU = torch.device("cpu")


def schedule(cfg: TrainConfig, total: int) -> list[float]:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    return [set_learning_rate(optimizer, cfg, step, total) for step in range(total)]


def test_warm_up_rises_linearly_then_cosine_decays_to_the_floor():
    cfg = TrainConfig(lr=1e-2, warmup_steps=4, lr_schedule="cosine", min_lr_ratio=0.1)
    lrs = schedule(cfg, 104)
    assert lrs[:4] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
    assert lrs[54] == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))))  # half-way: 0.55 lr
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:], strict=False)), "decays monotonically after warm-up"
    assert lrs[-1] == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 99 / 100))))


def test_constant_without_warm_up_is_plain_lr():
    assert schedule(TrainConfig(lr=3e-3), 5) == [3e-3] * 5


def test_training_follows_the_schedule(small_config, small_data, tmp_path):
    cfg = with_updates(small_config, output_dir=tmp_path, train={"max_steps": 7, "warmup_steps": 10, "lr": 1e-2})
    train(cfg, small_data)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    lrs = [group["lr"] for group in state["optimizer"]["param_groups"]]
    assert lrs == pytest.approx([1e-2 * 7 / 10] * len(lrs))  # the 7th step (index 6) ran at 7/10 of lr


def two_steps(small_config, small_data, updates: str) -> tuple[Ranker, torch.Tensor, torch.Tensor]:
    """A two_stage model after steps on two sets of training rows (one user's, then other users'): the model after
    step 2, its (items, users) weights after step 1, and the item and user rows step 1 read but step 2 did not."""
    torch.manual_seed(0)
    cfg = with_updates(small_config, model={"variant": "two_stage"}, train={"id_table_updates": updates})
    model = Ranker(cfg.model, model_shapes(small_data)).train()
    optimizer = make_optimizer(model, cfg.train)
    split, store = small_data.train, small_data.store
    first = (split.user == split.user[0]).nonzero().squeeze(-1)[:32]  # one user's rows, then other users' rows
    second = (split.user != split.user[0]).nonzero().squeeze(-1)[:32]
    items = [torch.cat([split.item[rows], split.history[rows].flatten()]).unique() for rows in (first, second)]
    users = [split.user[rows].unique() for rows in (first, second)]
    only_first_items = items[0][~torch.isin(items[0], items[1]) & (items[0] != 0)]
    only_first_users = users[0][~torch.isin(users[0], users[1])]
    after_first = None
    for rows in (first, second):
        optimisation_step(model, optimizer, make_batch(split, rows, store, model.content_inputs), cfg.train, CPU)
        if after_first is None:
            after_first = (model.item_embed.weight.detach().clone(), model.user_embed.weight.detach().clone())
    assert len(only_first_items) and len(only_first_users)
    return model, after_first, (only_first_items, only_first_users)


def test_rowwise_updates_leave_the_rows_a_step_did_not_read_as_they_were(small_config, small_data):
    model, (items_before, users_before), (items, users) = two_steps(small_config, small_data, "rows")
    assert torch.equal(model.item_embed.weight[items], items_before[items])
    assert torch.equal(model.user_embed.weight[users], users_before[users])
    read = small_data.train.item[small_data.train.user != small_data.train.user[0]][:32].unique()
    assert not torch.equal(model.item_embed.weight[read], items_before[read]), "the rows step 2 read did learn"
    assert model.item_embed.weight.grad is None or model.item_embed.weight.grad.is_sparse


def test_dense_updates_move_rows_a_step_did_not_read_with_their_momentum(small_config, small_data):
    """The contrast that makes the test above mean something: dense AdamW moves them."""
    model, (items_before, _), (items, _) = two_steps(small_config, small_data, "dense")
    assert not torch.equal(model.item_embed.weight[items], items_before[items])


def test_clipping_sparse_gradients_matches_clipping_their_dense_form():
    """The same gradient held sparse (with a repeated row) and dense: the same norm and the same clipped values.
    Both sum the same float32 squares in a different order: relative 1e-5 is far above that rounding."""
    torch.manual_seed(0)
    rows = torch.tensor([1, 3, 3, 7])
    weights = torch.randn(10, 4)
    clipped = []
    for sparse in (True, False):
        table, head = torch.nn.Embedding(10, 4, sparse=sparse), torch.nn.Linear(4, 1)
        table.weight.data.copy_(weights)
        torch.nn.init.constant_(head.weight, 2.0)
        (head(table(rows)).sum() * 10).backward()
        norm = clip_gradients([*table.parameters(), *head.parameters()], max_norm=0.5)
        grad = table.weight.grad.to_dense() if sparse else table.weight.grad
        total = torch.cat([grad.flatten(), head.weight.grad.flatten(), head.bias.grad.flatten()]).norm()
        clipped.append((norm, grad, head.weight.grad))
        assert total == pytest.approx(0.5, rel=1e-5)
    assert clipped[0][0] == pytest.approx(clipped[1][0].item(), rel=1e-5) and clipped[0][0] > 0.5
    assert torch.allclose(clipped[0][1], clipped[1][1], rtol=1e-5, atol=0)
    assert torch.allclose(clipped[0][2], clipped[1][2], rtol=1e-5, atol=0)


def test_a_dense_checkpoint_does_not_resume_rowwise(small_config, small_data, tmp_path):
    cfg = with_updates(small_config, output_dir=tmp_path, train={"max_steps": 2})
    train(cfg, small_data)
    rows = with_updates(cfg, train={"max_steps": 4, "id_table_updates": "rows"})
    with pytest.raises(ValueError, match="resume it with train.id_table_updates: dense"):
        train(rows, small_data, resume=True)


def test_a_rowwise_checkpoint_does_not_resume_densely(small_config, small_data, tmp_path):
    cfg = with_updates(small_config, output_dir=tmp_path, train={"max_steps": 2, "id_table_updates": "rows"})
    train(cfg, small_data)
    with pytest.raises(ValueError, match="resume it with train.id_table_updates: rows"):
        train(with_updates(cfg, train={"max_steps": 4, "id_table_updates": "dense"}), small_data, resume=True)
