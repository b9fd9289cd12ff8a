"""negrec's version, in a module of its own so that low layers (checkpoints, the served
model) can record it without importing the package root, which reaches the serving API."""

__version__ = "0.1.0"
