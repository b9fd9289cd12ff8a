"""``ray job submit --working-dir . -- python jobs/score.py ARGS``: ``negrec score``."""

from negrec.cli import run_stage

run_stage("score")
