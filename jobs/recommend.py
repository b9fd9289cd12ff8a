"""``ray job submit --working-dir . -- python jobs/recommend.py ARGS``: ``negrec recommend``."""

from negrec.cli import run_stage

run_stage("recommend")
