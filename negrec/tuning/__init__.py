"""Hyperparameter sweeps: search spaces and presets as data, coarse -> fine with ASHA.

``space`` reads and checks search spaces, ``fine`` derives the fine space from coarse
results, ``preset`` loads a sweep preset with its spaces, ``trial`` is the Tune function
trainable (one ``TorchTrainer`` run per trial), ``results`` turns Tune results into
stage summaries, ``sweep`` runs (or resumes) one stage, ``report`` writes the summary
and plot to the sweep's MLflow run. ``driver`` ties them together for ``negrec tune``.
"""
