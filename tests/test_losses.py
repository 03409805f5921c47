import math

import pytest
import torch

from em3.losses import cic_loss


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
