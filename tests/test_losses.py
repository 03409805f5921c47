import math

import pytest
import torch

from em3.losses import cic_loss, coengagement_loss, neighbourhood_loss, paired_info_nce


def _nce(logits_row: list[float], positive: int) -> float:
    return -logits_row[positive] + math.log(sum(math.exp(v) for v in logits_row))


def test_cic_equals_a_hand_computed_value_on_three_items():
    content = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])  # normalised: e1, e2, (0.6, 0.8)
    ids = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, -1.0]])  # normalised: e1, (.7071, .7071), -e2
    tau = 0.5
    c = [[1, 0], [0, 1], [0.6, 0.8]]
    i = [[1, 0], [2**-0.5, 2**-0.5], [0, -1]]
    sim = [[sum(a * b for a, b in zip(cr, ir, strict=False)) / tau for ir in i] for cr in c]
    content_to_id = sum(_nce(sim[r], r) for r in range(3)) / 3
    id_to_content = sum(_nce([sim[k][r] for k in range(3)], r) for r in range(3)) / 3
    expected = 0.5 * (content_to_id + id_to_content)
    value = cic_loss(content, ids, torch.tensor([10, 11, 12]), temperature=tau)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_duplicates_of_the_same_item_are_not_negatives():
    torch.manual_seed(0)
    content, ids = torch.randn(5, 3), torch.randn(5, 3)
    item_ids = torch.tensor([7, 7, 8, 9, 7])
    sim = torch.nn.functional.normalize(content, dim=-1) @ torch.nn.functional.normalize(ids, dim=-1).T / 0.1

    def one_direction(s: torch.Tensor) -> float:
        terms = []
        for r in range(5):
            others = [k for k in range(5) if k == r or item_ids[k] != item_ids[r]]  # duplicates left out
            terms.append(-s[r, r] + torch.logsumexp(s[r, others], dim=0))
        return torch.stack(terms).mean().item()

    expected = 0.5 * (one_direction(sim) + one_direction(sim.T))
    assert cic_loss(content, ids, item_ids, temperature=0.1).item() == pytest.approx(expected, rel=1e-6)
    unmasked = cic_loss(content, ids, torch.arange(5), temperature=0.1).item()
    assert abs(unmasked - expected) > 1e-3  # the masking is what makes the difference


def test_cic_is_minimal_when_content_and_ids_agree():
    ids = torch.eye(4)
    aligned = cic_loss(ids.clone(), ids, torch.arange(4), temperature=0.1)
    shuffled = cic_loss(ids[[1, 2, 3, 0]], ids, torch.arange(4), temperature=0.1)
    assert aligned.item() < 0.01 < shuffled.item()


def test_paired_info_nce_masks_every_row_that_shares_an_item_with_either_side():
    torch.manual_seed(1)
    left, right = torch.randn(5, 3), torch.randn(5, 3)
    left_items, right_items = torch.tensor([1, 2, 3, 4, 5]), torch.tensor([6, 1, 7, 8, 6])
    # row 0 shares item 1 with row 1 (left of 0, right of 1) and item 6 with row 4 (both rights): {0, 1, 4} pairwise
    sim = torch.nn.functional.normalize(left, dim=-1) @ torch.nn.functional.normalize(right, dim=-1).T / 0.2
    linked = {(0, 1), (1, 0), (0, 4), (4, 0)}

    def one_direction(s: torch.Tensor) -> torch.Tensor:
        terms = [-s[r, r] + torch.logsumexp(s[r, [k for k in range(5) if (r, k) not in linked]], 0) for r in range(5)]
        return torch.stack(terms).mean()

    expected = 0.5 * (one_direction(sim) + one_direction(sim.T))
    value = paired_info_nce(left, right, left_items, right_items, temperature=0.2)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_coengagement_pulls_the_pairs_and_trains_both_sides():
    pairs = torch.eye(4)
    aligned = coengagement_loss(pairs.clone(), pairs, torch.arange(4), torch.arange(4, 8), temperature=0.1)
    crossed = coengagement_loss(pairs[[1, 2, 3, 0]], pairs, torch.arange(4), torch.arange(4, 8), temperature=0.1)
    assert aligned.item() < 0.01 < crossed.item()
    content, partner = torch.randn(6, 4, requires_grad=True), torch.randn(6, 4, requires_grad=True)
    coengagement_loss(content, partner, torch.arange(6), torch.arange(6, 12), temperature=0.1).backward()
    assert content.grad.abs().sum() > 0 and partner.grad.abs().sum() > 0


def test_coengagement_of_fewer_than_two_pairs_is_zero_and_keeps_the_graph():
    content = torch.randn(1, 4, requires_grad=True)
    value = coengagement_loss(content, torch.randn(1, 4), torch.tensor([1]), torch.tensor([2]), temperature=0.1)
    assert value.item() == 0.0 and value.requires_grad


def test_neighbourhood_keeping_is_zero_where_the_spaces_agree_and_trains_only_the_content():
    frozen = torch.randn(8, 6)
    same_space = frozen @ torch.linalg.qr(torch.randn(6, 6))[0]  # a rotation keeps every cosine
    assert neighbourhood_loss(same_space, frozen, temperature=0.1).item() == pytest.approx(0.0, abs=1e-5)
    content = torch.randn(8, 6, requires_grad=True)
    frozen.requires_grad_(True)
    value = neighbourhood_loss(content, frozen, temperature=0.1)
    value.backward()
    assert value.item() > 0.01 and content.grad.abs().sum() > 0 and frozen.grad is None


def test_neighbourhood_keeping_is_the_kl_of_each_items_softmax_over_the_others():
    content, frozen = torch.randn(5, 3), torch.randn(5, 4)
    frozen[2] = 0.0  # an item without frozen content takes no part

    def rows(vectors: torch.Tensor) -> list[torch.Tensor]:
        unit = torch.nn.functional.normalize(vectors[[0, 1, 3, 4]], dim=-1)
        sims = unit @ unit.T / 0.5
        return [torch.softmax(torch.cat([sims[i, :i], sims[i, i + 1 :]]), 0) for i in range(4)]

    expected = sum((p * (p / q).log()).sum() for p, q in zip(rows(frozen), rows(content), strict=True)) / 4
    assert neighbourhood_loss(content, frozen, temperature=0.5).item() == pytest.approx(expected.item(), rel=1e-5)


def test_neighbourhood_keeping_of_fewer_than_three_items_is_zero_and_keeps_the_graph():
    content = torch.randn(4, 3, requires_grad=True)
    frozen = torch.cat([torch.randn(2, 3), torch.zeros(2, 3)])
    value = neighbourhood_loss(content, frozen, temperature=0.1)
    assert value.item() == 0.0 and value.requires_grad
