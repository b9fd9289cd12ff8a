"""The MLflow "model from code" file of the negrec pyfunc: MLflow copies this file into
the model and runs it at load time. Why code and not a pickled object: loading a
registered model then executes only this visible file and negrec itself, never a
pickle (the weights load with ``torch.load(weights_only=True)`` too)."""

from mlflow.models import set_model

from negrec.serving.pyfunc import RecommenderModel

set_model(RecommenderModel())
