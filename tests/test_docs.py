"""The configuration reference documents every key the code accepts."""

from __future__ import annotations

from pathlib import Path

from negrec.config import NegrecConfig

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_training_config_key_is_documented() -> None:
    text = DOC.read_text()
    config = NegrecConfig()
    keys = [
        f"{section}.{name}"
        for section in NegrecConfig.model_fields
        for name in type(getattr(config, section)).model_fields
    ]
    missing = [key for key in keys if f"`{key}`" not in text]
    assert not missing, f"add to docs/configuration.md: {missing}"
