"""negrec: next-item recommenders that learn from negative feedback, on Ray and MLflow."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``negrec.recommend(...)`` without importing torch or MLflow at ``import negrec``.

    The stage module ``negrec.recommend`` is itself callable, so the name works whether
    Python finds the module (once imported) or this hook (before)."""
    if name == "recommend":
        import negrec.recommend

        return negrec.recommend
    raise AttributeError(f"module 'negrec' has no attribute '{name}'")
