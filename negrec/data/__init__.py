"""Event logs in, prepared per-user sequences out, and the readers of prepared data.

Formats and their readers, the action mapping, the Ray Data preparation, splits, the
manifest, and the loaders that turn prepared files into batches. Nothing here imports
a model, the training loop or MLflow.
"""
