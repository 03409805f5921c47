import math

import numpy as np
import pytest
import scipy.sparse as sp

from em3.data.content_similarity import unit_concat
from em3.evaluation import similarity
from em3.evaluation.similarity import behaviour_similarity, interaction_matrix, material_similarity
from em3.evaluation.stage import popular_items, popularity_buckets

# Rows 0..5; row 0 is padding. By ID cosine, item 1's nearest are 0 (padding), 5 (no content), 2, then 3;
# item 3's nearest are 2 then 1. Neither the padding, nor item 5, nor the item itself may be a neighbour.
ID_EMBEDDINGS = np.array([[1, 0], [1, 0.01], [1, 0.2], [1, 1], [0, 1], [1, 0.1]])
RAW_CONTENT = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0], [0, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=np.float16)


def test_material_similarity_by_hand():
    score, per_item = material_similarity(ID_EMBEDDINGS, RAW_CONTENT, np.array([1, 3, 5]), k=2)
    # item 1 → {2, 3}: (cos([1,0,0],[1,1,0]) + cos([1,0,0],[0,1,1])) / 2 = (1/√2 + 0) / 2
    # item 3 → {2, 1}: (cos([0,1,1],[1,1,0]) + cos([0,1,1],[1,0,0])) / 2 = (1/2 + 0) / 2
    # item 5 has no content: undefined
    np.testing.assert_allclose(per_item[:2], [(1 / math.sqrt(2)) / 2, 0.25], rtol=1e-6)
    assert math.isnan(per_item[2])
    assert score == pytest.approx(((1 / math.sqrt(2)) / 2 + 0.25) / 2, rel=1e-6)


def test_behaviour_similarity_by_hand():
    content = np.array([[1, 0], [1, 0.05], [1, 0.3], [0.2, 1], [1, 0.1]])
    users = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]])  # row 0 (padding) has some
    items, user = np.nonzero(users)
    interactions = interaction_matrix(items, user, 5, 3)
    score, per_item = behaviour_similarity(content, interactions, np.array([1, 2]), k=2)
    # item 1 → {2, 3}: (cos([1,1,0],[1,0,0]) + cos([1,1,0],[0,1,1])) / 2 = (1/√2 + 1/2) / 2
    # item 2 → {1, 3}: (1/√2 + 0) / 2; item 4 (no interactions) and padding 0 are never neighbours
    expected = [(1 / math.sqrt(2) + 0.5) / 2, (1 / math.sqrt(2)) / 2]
    np.testing.assert_allclose(per_item, expected, rtol=1e-6)
    assert score == pytest.approx(np.mean(expected), rel=1e-6)


def test_interaction_matrix_counts_repeats():
    matrix = interaction_matrix(np.array([1, 1, 2]), np.array([0, 0, 1]), 3, 2)
    np.testing.assert_array_equal(matrix.toarray(), [[0, 0], [2, 0], [0, 1]])


def test_behaviour_similarity_is_higher_for_embeddings_that_know_the_behaviour():
    rng = np.random.default_rng(0)
    n_items, n_users, n_groups = 300, 120, 6
    item_group, user_group = rng.integers(n_groups, size=n_items), rng.integers(n_groups, size=n_users)
    rates = np.where(item_group[:, None] == user_group[None, :], 0.3, 0.02)  # (n_items, n_users)
    counts = rng.binomial(1, rates)
    counts[0] = 0  # padding
    interactions = sp.csr_array(counts)
    popular = np.argsort(-counts.sum(1))[: n_items // 5]
    informed, _ = behaviour_similarity(counts.astype(float), interactions, popular, k=10)
    random, _ = behaviour_similarity(rng.normal(size=(n_items, 16)), interactions, popular, k=10)
    assert informed > random + 0.1


def test_chunked_neighbours_equal_one_chunk(monkeypatch):
    rng = np.random.default_rng(1)
    search, target = rng.normal(size=(50, 4)), rng.normal(size=(50, 6))
    queries = np.arange(1, 50)
    whole = similarity.neighbour_similarity(search, target, queries, k=3)
    monkeypatch.setattr(similarity, "CHUNK_ELEMENTS", 120)  # a few queries per chunk
    np.testing.assert_allclose(similarity.neighbour_similarity(search, target, queries, k=3), whole)


def test_popular_items_are_the_top_quintile_of_the_items_with_interactions():
    # 10 items with interactions among many without: the top quintile is 2 items, whatever the zeros. (A quantile
    # over the whole catalogue put the threshold at 1 and called every item with an interaction popular.)
    counts = np.array([99] + [0] * 30 + [1] * 6 + [3, 4, 7, 9])  # row 0 (padding) is ignored
    ids = [f"a{row:03d}" for row in range(1, len(counts))]
    np.testing.assert_array_equal(popular_items(counts, 0.8, ids), [39, 40])
    np.testing.assert_array_equal(popular_items(np.zeros(6), 0.8, ids[:5]), [])


def test_ties_at_the_threshold_go_by_item_id():
    counts = np.array([0, 5, 5, 5, 5, 1, 1, 1, 1, 1, 1])  # 10 items with interactions: 2 popular, 4 tied for them
    ids = ["d", "b", "c", "a", "j", "i", "h", "g", "f", "e"]  # rows 1..10; the tied rows 1–4 are "d", "b", "c", "a"
    np.testing.assert_array_equal(popular_items(counts, 0.8, ids), [2, 4])  # "a" (row 4) and "b" (row 2)
    np.testing.assert_array_equal(popular_items(counts, 0.5, ids), [1, 2, 3, 4, 10])  # then "e" among the 1s


def test_raw_content_weighs_every_modality_alike_whatever_its_width():
    rng = np.random.default_rng(0)
    image, text = 30 * rng.normal(size=(5, 1280)), 0.1 * rng.normal(size=(5, 384))
    image[3] = 0  # item 3 has no photo
    content = unit_concat(image, text)
    assert content.shape == (5, 1280 + 384)
    np.testing.assert_allclose(np.linalg.norm(content[:, :1280], axis=1), [1, 1, 1, 0, 1], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(content[:, 1280:], axis=1), 1, atol=1e-6)
    # the cosine of two items is the mean of their per-modality cosines, not the wider or larger modality's
    cos = content[0] @ content[1] / (np.linalg.norm(content[0]) * np.linalg.norm(content[1]))
    per_modality = [a[0] @ a[1] / (np.linalg.norm(a[0]) * np.linalg.norm(a[1])) for a in (image, text)]
    assert cos == pytest.approx(np.mean(per_modality), abs=1e-6)


def test_popularity_buckets_drop_empty_ones():
    row_counts = np.array([0, 0, 0, 0, 0, 0, 3, 4, 10, 20])
    bucket, labels = popularity_buckets(row_counts, 5)
    assert labels == ["0–0", "3–4", "10–20"]
    np.testing.assert_array_equal(bucket, [0, 0, 0, 0, 0, 0, 1, 1, 2, 2])


def test_the_references_put_chance_at_random_neighbours_and_the_frozen_space_at_its_own_neighbours():
    """Two tastes: each of 200 items is bought by 5 of the 50 users of its taste. Same-taste items share
    5 × 5 / 50 = 0.5 buyers on average (cosine 0.5 / 5 = 0.1), other items none; a frozen space that knows the
    taste finds same-taste neighbours (0.1), random neighbours are of the same taste half the time (0.05)."""
    rng = np.random.default_rng(0)
    n_items, group_users, buyers = 200, 50, 5
    taste = np.arange(n_items + 1) % 2  # (rows,) row 0 is padding
    users = np.zeros((n_items + 1, 2 * group_users))
    for item in range(1, n_items + 1):
        users[item, taste[item] * group_users + rng.choice(group_users, buyers, replace=False)] = 1
    frozen = np.eye(2)[taste] + 0.01 * rng.standard_normal((n_items + 1, 2))  # (rows, 2) taste plus a little noise
    popular = np.arange(1, n_items + 1)
    references = similarity.behaviour_references(frozen, sp.csr_array(users), popular, k=10)
    assert references["frozen"] == behaviour_similarity(frozen, sp.csr_array(users), popular, 10)[0]
    assert references["frozen"] == pytest.approx(0.1, abs=0.02)  # 2,000 pairs: standard error about 0.003
    assert references["random"] == pytest.approx(0.05, abs=0.02)
    assert similarity.behaviour_references(frozen, sp.csr_array(users), popular, k=10) == references  # seeded
