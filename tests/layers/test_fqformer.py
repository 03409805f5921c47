import pytest
import torch

from em3.layers import FQFormer, MeanFusion

IMAGE_DIM, TEXT_DIM = 12, 8


def make_inputs(n: int, t_img: int, t_txt: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = [torch.randn(n, t_img, IMAGE_DIM, generator=g), torch.randn(n, t_txt, TEXT_DIM, generator=g)]
    masks = [torch.ones(n, t_img, dtype=torch.bool), torch.ones(n, t_txt, dtype=torch.bool)]
    return tokens, masks


@pytest.fixture
def fq() -> FQFormer:
    torch.manual_seed(0)
    return FQFormer((IMAGE_DIM, TEXT_DIM), d_model=16, n_queries=2, n_layers=2, n_heads=4).eval()


@pytest.mark.parametrize("t_img,t_txt", [(1, 1), (9, 32), (49, 5)])
def test_output_length_is_fixed_whatever_the_token_counts(fq, t_img, t_txt):
    tokens, masks = make_inputs(3, t_img, t_txt)
    assert fq(tokens, masks).shape == (3, 2 * 16)


def test_masked_modality_tokens_do_not_change_the_output(fq):
    tokens, masks = make_inputs(4, 5, 6)
    masks[1][:] = False  # text missing
    masks[0][:, 3:] = False  # image padding
    before = fq(tokens, masks)
    changed = [tokens[0].clone(), torch.randn_like(tokens[1]) * 100]
    changed[0][:, 3:] = 1e3
    after = fq(changed, masks)
    torch.testing.assert_close(before, after)
    # and the unmasked tokens do matter
    changed[0][:, 0] += 1.0
    assert not torch.allclose(fq(changed, masks), before)


def test_item_without_any_content_gets_a_finite_vector_from_the_queries(fq):
    tokens, masks = make_inputs(2, 3, 3)
    masks = [torch.zeros_like(m) for m in masks]
    out = fq(tokens, masks)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], out[1])  # nothing item-specific is left


def test_click_loss_gradients_reach_queries_and_attention_weights(fq):
    fq.train()
    tokens, masks = make_inputs(8, 4, 4)
    head = torch.nn.Linear(fq.out_dim, 1)
    labels = torch.randint(0, 2, (8,)).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(head(fq(tokens, masks)).squeeze(-1), labels)
    loss.backward()
    for name in (
        "queries",
        "blocks.0.attn.qkv.weight",
        "blocks.1.attn.proj.weight",
        "modality_proj.1.weight",
    ):
        grad = dict(fq.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_mean_fusion_ignores_masked_tokens_and_zeros_missing_modalities():
    torch.manual_seed(0)
    fusion = MeanFusion((IMAGE_DIM, TEXT_DIM), d_model=4)
    tokens, masks = make_inputs(2, 3, 3)
    masks[0][0, 1:] = False
    masks[1][1] = False
    out = fusion(tokens, masks)
    expected_image = fusion.modality_proj[0](tokens[0][0, :1]).mean(0)
    torch.testing.assert_close(out[0, :4], expected_image)
    torch.testing.assert_close(out[1, 4:], torch.zeros(4))


def test_query_outputs_equal_those_of_the_blocks_run_over_every_position(fq):
    """The last block computes the query positions only: the same function as running it over the whole sequence."""
    fq = fq.double()
    tokens, masks = make_inputs(5, 4, 7)
    tokens = [t.double() for t in tokens]
    masks[1][:, 5:] = False
    n, q = 5, fq.queries.shape[0]
    x = torch.cat(
        [(fq.queries + fq.type_embed.weight[0]).expand(n, -1, -1)]
        + [
            proj(t).masked_fill(~m.unsqueeze(-1), 0) + fq.type_embed.weight[i + 1]
            for i, (proj, t, m) in enumerate(zip(fq.modality_proj, tokens, masks, strict=True))
        ],
        dim=1,
    )
    keep = torch.cat([torch.ones(n, q, dtype=torch.bool), *masks], dim=1)
    for block in fq.blocks:
        x = block(x, keep[:, None, :])  # every position, every block
    torch.testing.assert_close(fq(tokens, masks), fq.norm(x[:, :q]).flatten(1), rtol=0, atol=1e-12)


@pytest.fixture
def fq_slots() -> FQFormer:
    torch.manual_seed(0)
    return FQFormer((IMAGE_DIM, TEXT_DIM), d_model=16, n_queries=2, n_layers=1, n_heads=4, modality_queries=True)


def test_modality_queries_add_a_slot_per_modality_that_only_its_modality_moves(fq_slots):
    """One layer: the image slot reads image tokens only, so a text added, removed or changed leaves it alone,
    while the shared queries mix both; a missing modality's slot is one learned vector for every item."""
    fq_slots.eval()
    tokens, masks = make_inputs(4, 3, 5)
    out = fq_slots(tokens, masks).view(4, 4, 16)  # (N, shared 2 + image 1 + text 1, d)
    no_text = [masks[0], torch.zeros_like(masks[1])]
    other_text = [tokens[0], torch.randn_like(tokens[1])]
    for changed in (fq_slots(tokens, no_text).view(4, 4, 16), fq_slots(other_text, masks).view(4, 4, 16)):
        torch.testing.assert_close(changed[:, 2], out[:, 2])  # the image slot
        assert not torch.allclose(changed[:, :2], out[:, :2]) and not torch.allclose(changed[:, 3], out[:, 3])
    missing_text = fq_slots(tokens, no_text).view(4, 4, 16)[:, 3]
    torch.testing.assert_close(missing_text, missing_text[:1].expand(4, -1))  # the same stand-in for every item


def test_modality_queries_train_the_queries_and_the_projections(fq_slots):
    tokens, masks = make_inputs(6, 3, 5)
    masks[1][:3] = False  # half the items without text
    fq_slots(tokens, masks).square().sum().backward()
    assert fq_slots.queries.grad[2:].abs().sum(-1).gt(0).all(), "each modality's query gets gradient"
    assert all(proj.weight.grad.abs().sum() > 0 for proj in fq_slots.modality_proj)
