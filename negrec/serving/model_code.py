"""The MLflow "model from code" file of the negrec pyfunc: MLflow copies this file into
the model and runs it at load time. Why code and not a pickled object: loading a
registered model then executes only this visible file and negrec itself, never a
pickle (the weights load with ``torch.load(weights_only=True)`` too).

The ``negrec`` imported here is the copy the model carries in ``code/negrec`` (MLflow
puts ``code/`` first on ``sys.path`` before running this file), unless the loading
process had imported negrec already; so the model loads where negrec is not installed.
"""

from mlflow.models import set_model

from negrec.serving.pyfunc import RecommenderModel

set_model(RecommenderModel())
