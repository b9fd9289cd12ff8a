"""Ray Train: the worker that runs the training loop under DDP, and resource planning."""
