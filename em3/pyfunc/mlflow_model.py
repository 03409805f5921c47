"""em3's ranker as an MLflow Model (``pyfunc`` flavour) that ``mlflow.pyfunc.load_model`` and ``mlflow models
serve`` load without pickle: the model is "code" (em3/pyfunc/model_code.py, which names ``EM3Model``), its state
is files (the safetensors weights, config and shapes of em3.models.io, and the serving catalogue).

Input: a DataFrame of impressions (``user_id``, ``item_id``, ``ts`` as ISO 8601 text, and the log's context
columns such as ``sales_channel_id``); output: ``score`` (click probability, NaN where refused) and ``refused``
(the reason, "" where scored). The ``token_store`` parameter names a token store of new items (``em3 features``)
from which items the model never saw are scored.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

WEIGHTS_ARTIFACT, CATALOGUE_ARTIFACT = "weights", "catalogue"
MODEL_CODE = Path(__file__).with_name("model_code.py")
# What loading and scoring import (em3 itself travels as code with the model), pinned to the running versions:
# the environment installed from requirements.lock (tests/serving checks them against it).
SERVING_PACKAGES = (
    "mlflow",
    "torch",
    "peft",
    "transformers",
    "safetensors",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "PyYAML",
    "tqdm",
)
TOKEN_STORE = "token_store"


class EM3Model(PythonModel):
    """The pyfunc face of em3.pyfunc.scorer.Scorer; everything it holds is rebuilt from files in ``load_context``."""

    def load_context(self, context) -> None:
        import torch

        from em3.models.io import load_model_dir
        from em3.pyfunc.catalogue import Catalogue
        from em3.pyfunc.scorer import Scorer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        model, _ = load_model_dir(context.artifacts[WEIGHTS_ARTIFACT], device)
        self.scorer = Scorer(model, Catalogue.load(context.artifacts[CATALOGUE_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        self.scorer.use_store((params or {}).get(TOKEN_STORE))
        scores = self.scorer.score(model_input)
        return pd.DataFrame({"score": scores.score, "refused": scores.reason.astype(str)})


def signature(context_columns: list[str]):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = [ColSpec("string", "user_id"), ColSpec("string", "item_id"), ColSpec("string", "ts")]
    inputs += [ColSpec("long", column, required=False) for column in context_columns]
    outputs = Schema([ColSpec("double", "score"), ColSpec("string", "refused")])
    return ModelSignature(Schema(inputs), outputs, ParamSchema([ParamSpec(TOKEN_STORE, "string", "")]))


def input_example(catalogue_dir: Path) -> pd.DataFrame:
    """Two rows of the model's own catalogue: a known user and two known items, the day after training."""
    index = json.loads((catalogue_dir / "catalogue.json").read_text())
    example = {"user_id": [index["user_ids"][0]] * 2, "item_id": index["item_ids"][:2], "ts": ["2099-01-01"] * 2}
    for column, codes in index["row_codes"].items():
        example[column] = [int(next(iter(codes), 0))] * 2
    return pd.DataFrame(example)


def pip_requirements() -> list[str]:
    """``name==version`` of SERVING_PACKAGES as installed, without local labels (torch ``2.13.0+cpu`` is the
    lock's ``2.13.0``: which build to install is the serving machine's choice, CPU or CUDA)."""
    return [f"{name}=={version(name).split('+')[0]}" for name in SERVING_PACKAGES]


def save_mlflow_model(path: Path, weights_dir: Path, catalogue_dir: Path) -> Path:
    """Write the MLflow Model folder at ``path`` (must not exist) from an em3 model folder and its catalogue."""
    import mlflow.pyfunc

    index = json.loads((catalogue_dir / "catalogue.json").read_text())
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=str(MODEL_CODE),
        artifacts={WEIGHTS_ARTIFACT: str(weights_dir), CATALOGUE_ARTIFACT: str(catalogue_dir)},
        code_paths=[str(Path(__file__).resolve().parents[1])],  # the em3 package, as it was when logged
        signature=signature(list(index["row_codes"])),
        input_example=input_example(catalogue_dir),
        pip_requirements=pip_requirements(),
    )
    return path
