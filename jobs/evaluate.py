"""``ray job submit --working-dir . -- python jobs/evaluate.py ARGS``: ``negrec evaluate``."""

from negrec.cli import run_stage

run_stage("evaluate")
