"""negrec: next-item recommenders that learn from negative feedback, on Ray and MLflow."""

__version__ = "0.1.0"
