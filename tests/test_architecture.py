"""The layer rule of docs/architecture.md, enforced with import-linter.

The contracts live in pyproject.toml (``[tool.importlinter]``). A contract that cannot
fail proves nothing, so the second test breaks each one on purpose in a copy of the
package and checks that import-linter names the broken contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

VIOLATIONS = {
    # a lower layer importing a higher one
    "negrec/data/vocab.py": ("from negrec.tuning import driver", "negrec layers"),
    # one stage module calling another as a library
    "negrec/stages/promote.py": ("from negrec.stages import evaluate", "stage modules are"),
    # the served model pulling in the training loop
    "negrec/serving/requests.py": ("from negrec.training import loop", "served model loads"),
}


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the package under ``root`` (it analyses what ``negrec`` imports
    as, so ``root`` goes first on the path)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_every_layer_contract() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module", sorted(VIOLATIONS))
def test_each_contract_fails_on_a_deliberate_violation(tmp_path: Path, module: str) -> None:
    shutil.copytree(
        REPO / "negrec", tmp_path / "negrec", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    line, contract = VIOLATIONS[module]
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # deliberate violation\n")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert len(broken) == 1 and contract in broken[0], result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout
