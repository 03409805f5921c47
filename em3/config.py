"""One typed configuration for every stage, loaded from YAML; unknown keys are rejected by name.

Each stage reads its own section. Defaults are the embedded demo defaults, so an empty YAML file is a valid config.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Fraction = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    """Strict base: unknown keys are errors, values are validated, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticConfig(Section):
    """The token-level synthetic dataset (see em3.data.synthetic_tokens)."""

    n_users: int = Field(800, gt=0)
    n_items: int = Field(1200, gt=0)
    n_days: int = Field(30, gt=2)
    impressions_per_user: int = Field(60, gt=0)
    new_item_fraction: float = Field(0.3, ge=0, lt=1, description="items released during validation and test")
    missing_modality_rate: float = Field(0.05, ge=0, lt=1)
    image_tokens: int = Field(9, gt=0)
    text_tokens: int = Field(12, gt=0)
    image_dim: int = Field(48, gt=0)
    text_dim: int = Field(32, gt=0)
    n_attributes: int = Field(4, gt=0, description="latent attributes per modality")


class DataConfig(Section):
    """Where training data comes from, and the folders the data stages write (relative to the working directory)."""

    source: Literal["synthetic", "tables"] = Field(
        "synthetic", description="synthetic: the token-level log in memory; tables: ingest + features outputs"
    )
    raw_dir: Path = Field(Path("data/raw"), description="where `em3 generate` writes the raw (H&M-layout) data")
    tables_dir: Path = Field(Path("data/tables"), description="where `em3 ingest` writes the canonical tables")
    validation_dir: Path = Field(Path("data/validation"), description="where `em3 validate` writes its report")
    store_dir: Path = Field(Path("data/features"), description="where `em3 features` writes the token store")
    synthetic: SyntheticConfig = SyntheticConfig()
    max_history: int = Field(30, gt=0, description="most recent earlier clicks kept per impression")
    history: Literal["auto", "earlier_days", "earlier_events"] = Field(
        "auto",
        description="which clicks a history holds: those of earlier days (day-stamped purchase logs: a same-day "
        "basket would leak) or of strictly earlier timestamps; auto: earlier_events when the log's timestamps carry "
        "a time of day, else earlier_days",
    )
    user_features: tuple[str, ...] | None = Field(
        None,
        description="users-table columns fed to the ranker as context (strings: categorical, numbers: numeric); "
        "None: every column but user_id; (): none",
    )
    category_min_rows: int = Field(
        5, ge=1, description="a categorical context value on fewer training rows falls into the unknown bucket"
    )
    allow_unvalidated: bool = Field(
        False,
        description="let features and train run on tables whose validation failed, is missing or stale, or that "
        "came from another source than ingest.source (says so loudly)",
    )
    split: Literal["ingest", "newest_days"] = Field(
        "ingest",
        description="tables: split at the dates ingest recorded, or at the newest days (test: the last test_days "
        "day partitions of the tables, validation: the valid_days before; a daily run's windows move with its data)",
    )
    valid_days: int = Field(4, gt=0, description="last days before the test period used for validation")
    test_days: int = Field(6, gt=0, description="last days of the log used for test")
    train_days: int | None = Field(
        None,
        gt=0,
        description="tables: train on the last train_days day partitions before validation only (older days still "
        "feed the behaviour histories); None: every day before validation",
    )
    cold_max_train: int = Field(
        3, ge=1, description="an item is cold on a row when it had fewer interactions than this in train"
    )


class FQFormerConfig(Section):
    d_model: int = Field(64, gt=0)
    n_queries: int = Field(2, gt=0)
    n_layers: int = Field(1, gt=0)
    n_heads: int = Field(4, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    modality_queries: bool = Field(
        True,
        description="one more query per modality that attends only to that modality's tokens: a slot per modality "
        "that keeps it in place whatever else the item has, and a learned stand-in when it is missing",
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> FQFormerConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"fqformer.d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        return self


class LoRAConfig(Section):
    rank: int = Field(4, gt=0)
    alpha: float = Field(8.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


# The weights of em3's objectives beyond the paper (issue 25), chosen on the sample's validation runs
# (docs/benchmarks.md, "The co-engagement objective" and "Choosing both weights together"): with the neighbourhoods
# kept, co-engagement added nothing, so it is off. Other variants default to 0: two_stage stays the baseline as
# teams run it today and takes them only when told (the benchmark's two_stage_coengagement, two_stage_neighbourhood).
EM3_OBJECTIVE_WEIGHTS = {"coengagement_weight": 0.0, "neighbourhood_weight": 3.0}
COENGAGEMENT_ALONE_WEIGHT = 0.5  # co-engagement's weight chosen on validation before neighbourhood keeping existed


class ModelConfig(Section):
    variant: Literal["id_only", "two_stage", "em3"] = "em3"
    backbone: Literal["din", "dcn"] = "din"
    embed_dim: int = Field(32, gt=0)
    fusion: Literal["fqformer", "mean"] = "fqformer"
    content_tokens: Literal["both", "fine", "summary"] = Field(
        "both",
        description="em3: what the fusion reads per modality: its pooled vector as one summary token, its finer "
        "tokens (image grid, text tokens), or both (DESIGN §1)",
    )
    pooled_projection: Literal["linear", "mlp"] = Field(
        "linear",
        description="two_stage: the frozen pooled vectors through one linear layer, or through an MLP as deep and "
        "wide as em3's content head (linear to embed_dim, GELU, linear; the two_stage_mlp baseline, DESIGN §3)",
    )
    fqformer: FQFormerConfig = FQFormerConfig()
    history_mode: Literal["full", "lora", "frozen"] = "lora"
    content_cache_every: int = Field(
        1000,
        ge=0,
        description="em3: a per-item cache of fused content (items through the FQ-Former without gradient), read "
        "by lora/frozen history items in training and by every item in prediction: an entry fused before the "
        "latest refresh, which comes every this many steps (and before every prediction), is stale and fused "
        "anew when read; 0 = no cache: fuse each batch's items. 1000: as good as 50 on validation (issue 20)",
    )
    content_cache: Literal["catalogue", "read"] = Field(
        "read",
        description="em3's cache (em3.models.content_cache): 'catalogue' fuses every item of the catalogue at each "
        "refresh; 'read' marks entries stale at a refresh and fuses an item when a step reads it stale or missing, "
        "keeping at most content_cache_items vectors (a step's cost set by what it reads, not by the catalogue)",
    )
    content_cache_items: int = Field(65536, gt=0, description="'read' cache: the most fused vectors it keeps")
    lora: LoRAConfig = LoRAConfig()
    history_similarity: bool = Field(
        True,
        description="content variants: the mean and max cosine, in the frozen encoders' space, between the target "
        "and the user's earlier items are two more backbone inputs (em3.data.content_similarity)",
    )
    unseen_ids_from_content: bool = Field(
        True,
        description="content variants: after training, items that no training row showed get an ID embedding "
        "predicted from their content embedding (ridge regression fitted on the items training showed; "
        "em3.models.item_tables) instead of keeping their random initial one",
    )
    modality_dropout: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="content variants, in training: each target item that has both a photo and a text loses one "
        "of them with this probability, so that the content tower learns every subset of its inputs",
    )
    modality_dropout_text_share: float = Field(
        0.8,
        ge=0,
        le=1,
        description="modality dropout: the share of the dropped items that lose their text (the others lose their "
        "photo); above 0.5 the tower leans on the photo where a text is present",
    )
    cic_weight: float = Field(0.1, ge=0, description="λ of the CIC loss; 0 disables CIC")
    cic_temperature: float = Field(0.1, gt=0)
    cic_dim: int = Field(32, gt=0)
    coengagement_weight: float | None = Field(
        None,
        ge=0,
        description="content variants: weight of the co-engagement loss, which pulls together the content "
        "embeddings of a training positive's item and the user's earlier positive items (in-batch negatives, "
        "duplicates masked; em3.losses); 0 disables it; unset: em3's weight, chosen on validation "
        f"({EM3_OBJECTIVE_WEIGHTS['coengagement_weight']}), and 0 for the other variants",
    )
    coengagement_temperature: float = Field(0.1, gt=0)
    coengagement_window: int = Field(
        1, ge=1, description="co-engagement pairs a positive with this many of the user's latest earlier positives"
    )
    neighbourhood_weight: float | None = Field(
        None,
        ge=0,
        description="content variants: weight of a loss that keeps the frozen content's neighbourhoods in the "
        "content embedding: for each target item of a batch, the KL divergence between the softmax of its cosines "
        "to the batch's other items in the frozen space (material similarity's) and in the content embedding "
        "(em3.losses); 0 disables it; unset: em3's weight, chosen on validation "
        f"({EM3_OBJECTIVE_WEIGHTS['neighbourhood_weight']}), and 0 for the other variants",
    )
    neighbourhood_temperature: float = Field(0.1, gt=0)
    mlp_hidden: tuple[int, ...] = (128, 64)
    attention_hidden: tuple[int, ...] = (64,)
    cross_layers: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)

    @property
    def coengagement_loss_weight(self) -> float:
        """The co-engagement weight this model trains with: ``coengagement_weight``, or its variant's default."""
        return self._objective_weight("coengagement_weight")

    @property
    def neighbourhood_loss_weight(self) -> float:
        """The neighbourhood-keeping weight this model trains with: ``neighbourhood_weight`` or its variant's."""
        return self._objective_weight("neighbourhood_weight")

    def with_objective_weights(self) -> ModelConfig:
        """This config with the objective weights it trains with written out (an unset one takes its variant's
        default), so that a config saved with a run says what trained, whatever the defaults become later."""
        return self.model_copy(update={name: self._objective_weight(name) for name in EM3_OBJECTIVE_WEIGHTS})

    def _objective_weight(self, name: str) -> float:
        value = getattr(self, name)
        if value is not None:
            return value
        return EM3_OBJECTIVE_WEIGHTS[name] if self.variant == "em3" else 0.0


class TrainConfig(Section):
    batch_size: int = Field(256, gt=0)
    epochs: int = Field(10, gt=0)
    lr: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(0, ge=0, description="steps of linear learning-rate warm-up from lr / warmup_steps")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="after warm-up: keep lr, or decay it along a cosine to min_lr_ratio × lr"
    )
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine: the last step's lr as a share of lr")
    weight_decay: float = Field(1e-4, ge=0)
    id_table_updates: Literal["dense", "rows"] = Field(
        "dense",
        description="how the user and item ID tables learn: 'dense' AdamW over every row at every step (a step's "
        "cost grows with the number of users and items); 'rows' lazy Adam over the rows the step read only "
        "(em3.train.optim.RowwiseTables; single-process training)",
    )
    grad_clip: float = Field(1.0, gt=0)
    patience: int = Field(3, ge=1, description="epochs without a better validation AUC before stopping")
    checkpoint_every: int = Field(200, gt=0, description="steps between checkpoints")
    max_steps: int | None = Field(None, gt=0, description="stop after this many steps (for quick runs)")
    init_from: str | None = Field(
        None,
        description="warm start: begin from a trained model's weights, carried over by id (a run folder, a model "
        "folder, models:/NAME@ALIAS or runs:/ID; new items take an ID from their content, new users start neutral)",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU)")
    progress: bool = True


class FeaturesConfig(Section):
    """The `features` stage (see em3.features): frozen encoders -> the per-item token store."""

    image_encoder: str = Field("efficientnet-lite0", description="built in, or a Hugging Face id / path")
    text_encoder: str = Field("all-minilm-l6-v2", description="built in, or a Hugging Face id / path")
    image_size: int = Field(224, ge=32, description="input side of the built-in image encoder")
    image_grid: int = Field(3, ge=1, description="feature maps are average-pooled to grid² image tokens")
    max_text_tokens: int = Field(32, ge=2, description="text tokens kept per item (truncated / padded)")
    batch_size: int = Field(32, gt=0)
    decode_workers: int = Field(4, ge=1, description="threads decoding images ahead of the encoder")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True


class RawSyntheticConfig(Section):
    """The raw-layout (H&M-like) synthetic dataset with rendered images (see em3.data.synthetic_hm)."""

    seed: int = 0
    n_users: int = Field(300, gt=0)
    n_items: int = Field(400, gt=0)
    n_purchases: int = Field(6000, gt=0, description="expected purchase rows (before multi-unit duplicates)")
    n_days: int = Field(120, gt=1)
    end_date: date = date(2020, 9, 22)
    image_size: int = Field(128, ge=32)
    late_item_fraction: float = Field(0.15, ge=0, lt=1, description="products released only at the end")
    late_release_days: int = Field(21, gt=0, description="late products are released within these last days")
    taste_rank: int = Field(2, gt=0, description="rank of the bilinear visual x textual user taste")
    taste_strength: float = Field(2.0, ge=0)
    popularity_strength: float = Field(1.0, ge=0)
    drift_days: float = Field(60.0, gt=0, description="time constant of the slow drift of user tastes")
    taste_segments: int = Field(
        0,
        ge=0,
        description="native log only: users' tastes scatter around this many shared segment tastes "
        "(0: all independent)",
    )
    segment_spread: float = Field(
        0.5, ge=0, description="native log only: scale of a user's own taste around their segment's"
    )
    shelf_days: float = Field(
        0.0,
        ge=0,
        description="native log only: releases spread over the whole log and an item is shown with weight "
        "exp(-age / shelf_days), so the catalogue turns over (0: uniform over released items)",
    )
    duplicate_rate: float = Field(0.05, ge=0, lt=1, description="purchases written as duplicate rows (units)")

    @model_validator(mode="after")
    def _late_window_fits(self) -> RawSyntheticConfig:
        if self.late_release_days >= self.n_days:
            days = f"late_release_days ({self.late_release_days}) must be below n_days ({self.n_days})"
            raise ValueError(f"raw_synthetic.{days}")
        return self


class IngestConfig(Section):
    """The ingest stage: raw logs to canonical Parquet tables (see em3.ingest). The data rules used by its raw
    checks (date range, text length, the folder of the suite files) are recorded in the manifest and re-applied
    by `validate`."""

    source: str = Field("data/raw", description="local folder or s3://bucket/prefix")
    format: Literal["hm", "native"] = Field("hm", description="hm: Kaggle H&M purchases; native: impressions")
    native_log: str = Field("impressions.csv", description="native: impression log, .csv or .parquet")
    native_items: str = Field("items.csv", description="native: items file, .csv or .parquet")
    native_users: str = Field("users.csv", description="native: users file, .csv or .parquet; read when present")
    numeric_user_columns: tuple[str, ...] = Field(
        (), description="users-file columns besides age read as numbers (NaN when empty); the others are strings"
    )
    negatives_per_positive: int = Field(4, ge=1, description="purchase logs: negatives sampled per purchase")
    seed: int = Field(0, description="seed of the negative sampling")
    valid_start: date | None = Field(None, description="first day of validation; unset: 70 % into the log's days")
    test_start: date | None = Field(None, description="first day of test; unset: 85 % into the log's days")
    cold_max_train: int = Field(3, ge=1, description="an item is cold with fewer positive train rows")
    min_date: date | None = Field(None, description="earliest accepted event date; None: no floor")
    max_date: date = Field(date(2099, 12, 31), description="latest accepted event date")
    max_text_chars: int = Field(5000, gt=0, description="longer item texts are cut to this many characters")
    days: tuple[date, date] | None = Field(
        None,
        description="[first, last]: add the source's events of these days to the existing output as their own "
        "day partitions (a day ingested again replaces its partition; the other days, items, users and images "
        "are kept, this run's items and users winning on their id); None: ingest the whole source and replace "
        "the output",
    )
    suites_dir: str | None = Field(
        None,
        description="folder of the Great Expectations suite files (raw/<table>.json, canonical/<table>.json) that "
        "ingest and validate run; None: the ones shipped with em3 (data_validation/)",
    )

    @model_validator(mode="after")
    def _dates_ordered(self) -> IngestConfig:
        first = self.min_date or date.min
        valid = self.valid_start or first
        test = self.test_start or self.max_date
        if self.days and self.days[0] > self.days[1]:
            raise ValueError(f"ingest.days: first day after last ({self.days[0]} > {self.days[1]})")
        if not (first <= valid <= self.max_date and first <= test <= self.max_date and valid < test):
            raise ValueError(
                "ingest dates must satisfy min_date <= valid_start < test_start <= max_date "
                f"(got {self.min_date}, {self.valid_start}, {self.test_start}, {self.max_date})"
            )
        return self


class TableLimits(Section):
    """Quarantined-share limits of single tables (ingest's raw tables and validate's canonical ones, by name);
    None: ``max_bad_fraction``, except for the modality tables ``images`` and ``texts``, whose rows (a broken
    photo, an empty or cut text) lose nothing and fail nothing unless a limit is set here."""

    articles: Fraction | None = None
    customers: Fraction | None = None
    transactions: Fraction | None = None
    items: Fraction | None = None
    impressions: Fraction | None = None
    users: Fraction | None = None
    interactions: Fraction | None = None
    images: Fraction | None = None
    texts: Fraction | None = None


class ModalityLimits(Section):
    """Largest share of the catalogue's items without a usable image / text; 1: never fails (a catalogue without
    photos or without texts is valid data)."""

    image: Fraction = 1.0
    text: Fraction = 1.0


class DriftCheck(Section):
    """One drift check: flagged past ``limit``; then ``action`` says whether the run warns or fails (``off``: the
    check is not run)."""

    limit: float = Field(gt=0)
    action: Literal["warn", "fail", "off"] = "warn"


class DriftConfig(Section):
    """Drift of the new day(s) against the days before them (em3.validation.drift): each check's limit and action."""

    reference_days: int = Field(7, gt=0, description="day partitions before the new days that they are compared with")
    min_rows: int = Field(
        1000, gt=0, description="judge nothing when the new days or the reference have fewer rows (chance moves them)"
    )
    label_rate: DriftCheck = Field(
        DriftCheck(limit=2.0, action="fail"),
        description="limit: the largest ratio of the new days' label rate to the reference's, or of its inverse",
    )
    new_item_share: DriftCheck = Field(
        DriftCheck(limit=0.25), description="limit: the largest change of the share of rows whose item is new"
    )
    new_user_share: DriftCheck = Field(
        DriftCheck(limit=0.25), description="limit: the largest change of the share of rows whose user is new"
    )
    missing_image_share: DriftCheck = Field(
        DriftCheck(limit=0.2, action="fail"),
        description="limit: the largest change of the share of rows whose item has no usable photo",
    )
    missing_text_share: DriftCheck = Field(
        DriftCheck(limit=0.2, action="fail"),
        description="limit: the largest change of the share of rows whose item has no text",
    )
    numeric_psi: DriftCheck = Field(
        DriftCheck(limit=0.25), description="limit: the largest PSI of a numeric column (0.1-0.25: moderate shift)"
    )
    text_length_psi: DriftCheck = Field(
        DriftCheck(limit=0.25), description="limit: the largest PSI of the rows' item text lengths"
    )

    @model_validator(mode="after")
    def _ratio_above_one(self) -> DriftConfig:
        if self.label_rate.limit < 1:
            raise ValueError(f"validation.drift.label_rate.limit is a ratio, at least 1 (got {self.label_rate.limit})")
        return self


class ValidateConfig(Section):
    """The validate stage: canonical-table checks, the quarantine threshold and drift (see em3.validation)."""

    max_bad_fraction: float = Field(0.05, ge=0, le=1, description="fail when a table loses more of its rows")
    table_max_bad_fraction: TableLimits = Field(
        TableLimits(), description="limits of single tables, in place of max_bad_fraction"
    )
    max_missing_fraction: ModalityLimits = Field(
        ModalityLimits(), description="fail when more of the items lack a usable image / text"
    )
    drift: DriftConfig = Field(DriftConfig(), description="the new day(s) against a reference window of days")


class EvaluateConfig(Section):
    """The evaluate stage: DESIGN §2 metrics, plots and the HTML report (see em3.evaluation)."""

    k_neighbours: int = Field(10, gt=0, description="neighbours per item in the similarity metrics")
    popular_quantile: float = Field(
        0.8, ge=0, lt=1, description="popular items: the top (1 - this) share of the items with training interactions"
    )
    baseline: Literal["id_only", "two_stage", "em3"] = Field("two_stage", description="variant compared against")
    popularity_buckets: int = Field(5, gt=0, description="item-popularity buckets of test rows for AUC by bucket")
    batch_size: int = Field(1024, gt=0, description="rows or items per forward pass")
    device: Literal["auto", "cpu", "cuda"] = "auto"


class RegistryConfig(Section):
    """The register stage: MLflow tracking, the model registry and its promotion gate (see em3.registry)."""

    tracking_uri: str = Field("sqlite:///mlflow.db", description="sqlite:///path locally, http(s)://host in production")
    artifact_location: str | None = Field(
        None, description="artifact root of a new experiment (e.g. s3://bucket/path); None: the store's default"
    )
    experiment: str = "em3"
    model_name: str = Field("em3", pattern=r"^[\w.-]+$", description="registered model, loaded as models:/NAME@ALIAS")
    min_auc: float = Field(0.55, ge=0, le=1, description="champion only with a test AUC of at least this")
    min_delta: float = Field(0.0, description="champion only with a test AUC of at least the champion's + this")
    cold_tolerance: float = Field(0.005, ge=0, description="largest accepted drop of cold_auc below the champion's")
    promote_despite_drift: bool = Field(
        False,
        description="False: a model whose data's validation flagged drift (a check set to warn) stays challenger",
    )
    rescore_champion: bool = Field(
        True,
        description="score the champion on the candidate's test rows (its weights carried over by id) and gate on "
        "those; False, or a champion saved without ids.json: compare with the metrics it was registered with",
    )
    required_metrics: tuple[str, ...] = Field(
        ("auc", "gauc", "logloss", "cold_auc"), description="test metrics that must be present and finite"
    )

    @model_validator(mode="after")
    def _auc_is_required(self) -> RegistryConfig:
        if "auc" not in self.required_metrics:
            raise ValueError("registry.required_metrics must include 'auc' (the gate compares it)")
        return self


class ScoreConfig(Section):
    """`em3 score`: an impression log scored by a registered model (see em3.serving)."""

    chunk_rows: int = Field(100_000, gt=0, description="rows read, scored and written at a time (bounds memory)")
    batch_size: int = Field(4096, gt=0, description="rows per forward pass")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True


class BenchConfig(Section):
    """What the quality benchmark (`em3 bench quality`) holds this config's data to (em3.bench.quality_summary)."""

    auc_levels: dict[str, float] = Field(
        {},
        description="mean test AUC each named configuration should reach on this data (the H&M sample's config: "
        "two_stage 0.58, em3 0.59, DESIGN §4); empty: no level targets",
    )
    auc_low: float = Field(
        -0.005, description="em3 − two_stage test AUC: the lower end of its 95 % interval must be above this"
    )


class Config(Section):
    name: str = "em3"
    seed: int = 0
    output_dir: Path = Path("runs/em3")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    features: FeaturesConfig = FeaturesConfig()
    raw_synthetic: RawSyntheticConfig = RawSyntheticConfig()
    ingest: IngestConfig = IngestConfig()
    validation: ValidateConfig = ValidateConfig()  # not `validate`: that name shadows BaseModel.validate
    registry: RegistryConfig = RegistryConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    score: ScoreConfig = ScoreConfig()
    bench: BenchConfig = BenchConfig()


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r} (check the spelling; see em3/config.py for the keys allowed)"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def parse_config(values: dict[str, Any], source: str = "<config>") -> Config:
    try:
        return Config.model_validate(values)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"{source}: invalid config:\n  {problems}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML config; ``overrides`` are dotted keys (``{"model.backbone": "dcn"}``) applied on top."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    return config_from_yaml(path.read_text(), str(path), overrides)


def config_from_yaml(text: str, source: str, overrides: Mapping[str, Any] | None = None) -> Config:
    """A config from YAML (or JSON) text; ``source`` names it in errors; dotted ``overrides`` apply on top."""
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(values).__name__}")
    for dotted, value in (overrides or {}).items():
        set_dotted(values, dotted, value)
    return parse_config(values, source)


def set_dotted(values: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating the intermediate mappings."""
    *parents, leaf = dotted.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
