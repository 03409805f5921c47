"""Why a content model scores as it does on a catalogue where many items lack a modality (issue 19's diagnosis).

    .venv/bin/python bench/modality_diagnosis.py RUN_DIR [RUN_DIR ...] [--config configs/bench_extract.yaml]
        [--work-dir runs/bench_extract] [--out bench/results/extract_diagnosis.json]

Each RUN_DIR is a trained run of the quality benchmark (its ``model/`` folder) on the config's prepared data. For the
data: the share of each split's rows whose item has a photo and a text. For each model:

- AUC on the validation and test rows by the modalities of the row's item (em3.evaluation.modality);
- the same test AUC with every item's text hidden from the content tower (its mask off, its pooled vector zero;
  the history-similarity inputs unchanged): does the text the model reads on test help or hurt it?
- how far the text moves an item's content embedding: the cosine between an item's embedding with and without its
  text, and the norm of each, over the test items that have a text;
- em3 only: the share of the queries' attention that goes to text tokens (the fusion's last block);
- the content→ID fill (model.unseen_ids_from_content): the R² of the ridge map on the items training showed, and
  the test AUC with the filled ID embeddings set to zero (neutral) instead.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from em3.atomic import write_json
from em3.bench.quality import benchmark_config
from em3.config import load_config
from em3.data import content_similarity
from em3.data.dataset import RankingData, Split
from em3.data.loading import load_data
from em3.data.token_store import TokenStore
from em3.evaluation.modality import MODALITY_SLICES, auc_by_modality, item_modalities, modality_slices
from em3.models import Ranker
from em3.models.content import TokenContent
from em3.models.io import load_model_dir
from em3.models.item_tables import item_embedding_tables, ridge_fit
from em3.train.trainer import predict

ROOT = Path(__file__).resolve().parents[1]


def without_text(store: TokenStore) -> TokenStore:
    """The store with every item's text hidden (masks off, pooled text zero), read through its mappings."""
    return TokenStore(
        store.item_ids,
        store.image_tokens,
        store.image_mask,
        store.text_tokens,
        np.zeros_like(store.text_mask),
        store.pooled_image,
        np.zeros_like(store.pooled_text),
    )


def hide_text_from_tower(data: RankingData, split: Split) -> RankingData:
    """``data`` whose content tower sees no text, while the history-similarity inputs of ``split`` stay those of the
    real store (computed from it first, then filed under the text-less store: only the tower's input changes)."""
    hidden = replace(data, store=without_text(data.store))
    real = content_similarity.split_similarity(data.store, split)
    content_similarity._SPLITS[(id(hidden.store), id(split))] = real
    return hidden


def modality_shares(data: RankingData) -> dict[str, dict[str, float]]:
    shares = {}
    for name in ("train", "valid", "test"):
        codes = item_modalities(data.store, getattr(data, name).item.numpy())
        shares[name] = {s: float(rows.mean()) for s, rows in modality_slices(codes).items()}
    return shares


@torch.no_grad()
def text_shift(model: Ranker, data: RankingData, items: np.ndarray) -> dict[str, float]:
    """Over ``items`` (that have a text): cosine of the content embedding with and without the text, and norms."""
    rows = torch.from_numpy(items)
    with_text = model.content(data.store.gather(rows))
    no_text = model.content(without_text(data.store).gather(rows))
    cosine = torch.nn.functional.cosine_similarity(with_text, no_text, dim=1)
    return {
        "cosine_with_vs_without_text": float(cosine.mean()),
        "norm_with_text": float(with_text.norm(dim=1).mean()),
        "norm_without_text": float(no_text.norm(dim=1).mean()),
    }


@torch.no_grad()
def text_attention_share(model: Ranker, data: RankingData, items: np.ndarray) -> float | None:
    """em3 with the FQ-Former: the mean share of the queries' attention (last block, all heads) on text tokens."""
    tower = model.content
    if not isinstance(tower, TokenContent) or not hasattr(tower.fusion, "blocks"):
        return None
    captured = {}
    block = tower.fusion.blocks[-1]
    hook = block.attn.register_forward_pre_hook(lambda _, args: captured.update(x=args[0], allowed=args[1], n=args[2]))
    content = data.store.gather(torch.from_numpy(items))
    tower.fuse(content)
    hook.remove()
    attn, x, allowed, n_queries = block.attn, captured["x"], captured["allowed"], captured["n"]
    n, s, d = x.shape
    q, k, _ = attn.qkv(x).split(d, dim=-1)
    heads = attn.n_heads
    q = (q[:, :n_queries] + attn.query_bias).reshape(n, n_queries, heads, -1).transpose(1, 2)
    k = k.reshape(n, s, heads, -1).transpose(1, 2)
    scores = (q @ k.transpose(-1, -2)) / (d // heads) ** 0.5  # (N, h, Q, S)
    weights = scores.masked_fill(~allowed[:, None, :n_queries], -torch.inf).softmax(-1)  # as SelfAttention masks
    fine = content.image_tokens.shape[1] if "image" in tower.modalities else 0
    n_image = {"summary": 1, "fine": fine, "both": 1 + fine}[tower.tokens] if fine else 0  # tokens before text's
    text_from = n_queries + n_image
    return float(weights[:, :, : tower.fusion.n_shared, text_from:].sum(-1).mean())  # the shared queries' share


def fill_fit(model: Ranker, data: RankingData) -> float:
    """R² of the ridge map from content to ID embedding on the items training showed (what the fill relies on)."""
    tables = item_embedding_tables(model, data.store, 1024)
    seen = np.bincount(data.train.item.numpy(), minlength=data.n_items) > 0
    seen[0] = False
    x, y = tables["content"][seen], tables["id"][seen]
    weights = ridge_fit(x, y)
    residual = y - (x @ weights[:-1] + weights[-1])
    return float(1 - (residual**2).sum() / ((y - y.mean(0)) ** 2).sum())


def diagnose(run_dir: Path, data: RankingData) -> dict:
    model, cfg = load_model_dir(run_dir / "model")
    torch.set_num_threads(1)
    result: dict = {
        "run": str(run_dir),
        "variant": cfg.model.variant,
        "backbone": cfg.model.backbone,
        "seed": cfg.seed,
        "lr": cfg.train.lr,
    }
    for name in ("valid", "test"):
        split = getattr(data, name)
        codes = item_modalities(data.store, split.item.numpy())
        logits = predict(model, split, data, 1024)
        result[f"{name}_auc_by_modality"] = auc_by_modality(split.label.numpy(), logits, codes)
    if model.content is None:
        return result
    test = data.test
    codes = item_modalities(data.store, test.item.numpy())
    logits = predict(model, test, hide_text_from_tower(data, test), 1024)
    result["test_auc_by_modality_text_hidden"] = auc_by_modality(test.label.numpy(), logits, codes)
    with_text = np.unique(test.item.numpy()[codes == MODALITY_SLICES.index("image+text")])
    result["text_shift"] = text_shift(model, data, with_text)
    result["text_attention_share"] = text_attention_share(model, data, with_text)
    result["fill_r2"] = fill_fit(model, data)
    unseen = np.bincount(data.train.item.numpy(), minlength=data.n_items) == 0
    with torch.no_grad():
        model.item_embed.weight[torch.from_numpy(unseen)] = 0.0
    logits = predict(model, test, data, 1024)
    result["test_auc_by_modality_unseen_ids_zero"] = auc_by_modality(test.label.numpy(), logits, codes)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path, help="trained runs (folders holding model/)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "bench_extract.yaml")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=ROOT / "runs" / "bench_extract",
        help="the benchmark's work folder (its prepared data)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "extract_diagnosis.json")
    args = parser.parse_args()
    cfg = benchmark_config(load_config(args.config), args.work_dir)
    data = load_data(cfg)
    report = {
        "config": str(args.config),
        "rows_by_modality": modality_shares(data),
        "models": [diagnose(run_dir, data) for run_dir in args.run_dirs],
    }
    write_json(args.out, report)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
