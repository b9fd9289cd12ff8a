"""negrec: next-item recommenders that learn from negative feedback, on Ray and MLflow."""

from negrec.version import __version__

__all__ = ["__version__", "recommend"]


def __getattr__(name: str) -> object:
    """``negrec.recommend(...)`` without importing torch or MLflow at ``import negrec``."""
    if name == "recommend":
        from negrec.serving.api import recommend

        return recommend
    raise AttributeError(f"module 'negrec' has no attribute '{name}'")
