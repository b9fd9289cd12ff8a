"""``ray job submit --working-dir . -- python jobs/promote.py ARGS``: ``negrec promote``."""

from negrec.cli import run_stage

run_stage("promote")
