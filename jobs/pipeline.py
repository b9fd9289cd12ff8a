"""``ray job submit --working-dir . -- python jobs/pipeline.py ARGS``: ``negrec pipeline``."""

from negrec.cli import run_stage

run_stage("pipeline")
