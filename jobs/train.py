"""``ray job submit --working-dir . -- python jobs/train.py ARGS``: ``negrec train``."""

from negrec.cli import run_stage

run_stage("train")
