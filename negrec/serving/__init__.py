"""Serving: histories of (original item id, action) in, top-k original item ids out.

Split by what each part needs, so a request is parsed and validated before any model
or MLflow is loaded: ``requests`` (tokens and answers), ``vocabulary`` (original item
ids <-> indices), ``recommender`` (the model's top-k), ``pyfunc`` and ``model_code``
(the MLflow model that wraps the recommender).
"""
