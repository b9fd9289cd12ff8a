"""``ray job submit --working-dir . -- python jobs/prepare.py ARGS``: ``negrec prepare``."""

from negrec.cli import run_stage

run_stage("prepare")
