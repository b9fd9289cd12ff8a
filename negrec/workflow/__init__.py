"""Whole runs made of several steps: the pipeline that ``negrec pipeline``, ``negrec demo``
and ``jobs/pipeline.py`` run (generate or read events, prepare, train or tune,
evaluate, promote, recommend), composed from the layers below; no stage module."""
