"""``ray job submit --working-dir . -- python jobs/generate.py ARGS``: ``negrec generate``."""

from negrec.cli import run_stage

run_stage("generate")
