"""``ray job submit --working-dir . -- python jobs/tune.py ARGS``: ``negrec tune``."""

from negrec.cli import run_stage

run_stage("tune")
