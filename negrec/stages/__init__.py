"""The ``negrec`` subcommands: each module parses its stage's arguments and calls the layer
below that does the work (``negrec.cli`` dispatches to them; ``jobs/*.py`` run them on a
cluster). Nothing in ``negrec`` imports a stage module."""
