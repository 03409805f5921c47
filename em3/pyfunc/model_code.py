"""The MLflow "model from code" file of em3 (em3.pyfunc.mlflow_model): MLflow runs it to get the model object,
instead of unpickling one. Not imported by em3 itself."""

from mlflow.models import set_model

from em3.pyfunc.mlflow_model import EM3Model

set_model(EM3Model())
