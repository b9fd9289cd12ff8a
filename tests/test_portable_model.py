"""The registered model is self-contained: it carries negrec's code, requires only public
packages, loads and predicts where negrec is not installed, and serves over HTTP with
``mlflow models serve`` (good requests answered, malformed ones a 400 naming the fault).
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from negrec.serving import promotion, pyfunc
from negrec.serving.api import recommend
from negrec.serving.vocabulary import Vocabulary
from tests.serving_helpers import Checkpoints, checkpoints, free_port, sqlite_store, without_negrec

pytestmark = pytest.mark.slow

UNKNOWN = "no-such-item"
CHAMPION = "models:/negrec@champion"

LOAD_AND_PREDICT = """
import json, sys
try:
    import negrec
except ModuleNotFoundError:
    pass
else:
    sys.exit(f"negrec is importable from {negrec.__file__}")
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
histories = json.loads(sys.argv[2])
frame = model.predict(pd.DataFrame({"history": histories, "k": [10] * len(histories)}))
loaded = {n: m.__file__ for n, m in sys.modules.items() if n.split(".")[0] == "negrec"}
print(json.dumps({
    "items": [list(map(int, row)) for row in frame["items"]],
    "unknown_items": [list(row) for row in frame["unknown_items"]],
    "negrec_modules": loaded,
    "top_level_modules": sorted({name.split(".")[0] for name in sys.modules}),
}))
"""


@pytest.fixture(scope="module")
def saved(small_prepared: str, tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    return checkpoints(small_prepared, tmp_path_factory)


@pytest.fixture(scope="module")
def champion(saved: Checkpoints, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry whose champion is the trained checkpoint; returns its tracking URI."""
    uri = sqlite_store(tmp_path_factory.mktemp("portable-registry"), tmp_path_factory)
    assert promotion.run(saved.good, tracking_uri=uri).promoted
    return uri


@pytest.fixture(scope="module")
def histories(small_prepared: str) -> list[list[str]]:
    """A long history of frequent items (every third rejected) and a short one with an
    item outside the vocabulary."""
    vocabulary = Vocabulary.of_prepared(small_prepared)
    items = [str(vocabulary.item_id(index)) for index in range(1, 31)]
    long = [f"{item}:{'-' if n % 3 == 0 else '+'}" for n, item in enumerate(items)]
    return [long, [f"{UNKNOWN}:+", *long[-4:]]]


def _items(history: list[str]) -> set[int]:
    return {int(token.rpartition(":")[0]) for token in history if not token.startswith(UNKNOWN)}


def test_saved_model_carries_negrec_and_public_requirements(
    saved: Checkpoints, small_prepared: str, tmp_path: Path
) -> None:
    from negrec import checkpoint

    model = pyfunc.save(
        checkpoint.load(saved.good), Vocabulary.of_prepared(small_prepared), tmp_path / "model"
    )
    code = model / "code" / "negrec"
    assert (code / "__init__.py").is_file() and (code / "serving" / "pyfunc.py").is_file()
    assert (code / "recipes" / "demo.yaml").is_file(), "package data travels too"
    assert not list(code.rglob("__pycache__")) and not list(code.rglob("*.pyc"))
    requirements = (model / "requirements.txt").read_text().split()
    assert requirements == pyfunc.requirements()
    assert not [line for line in requirements if "negrec" in line]
    assert all("==" in line and "+" not in line for line in requirements)


def test_registered_model_serves_where_negrec_is_not_installed(
    champion: str, histories: list[list[str]], tmp_path: Path
) -> None:
    expected = recommend(CHAMPION, histories, k=10, tracking_uri=champion)
    env = without_negrec(tmp_path / "site") | {"MLFLOW_TRACKING_URI": champion}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, CHAMPION, json.dumps(histories)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mismatches between the model's dependencies" not in done.stderr, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["items"] == [r.items for r in expected]
    assert answer["unknown_items"] == [[], [UNKNOWN]]
    modules = answer["negrec_modules"]
    repository = str(Path(__file__).resolve().parents[1])
    assert all(f"{os.sep}code{os.sep}negrec{os.sep}" in f for f in modules.values()), modules
    assert not [f for f in modules.values() if f.startswith(repository + os.sep)]
    # Every third-party package that the loaded negrec modules import is a requirement.
    assert _third_party_imports(modules.values(), answer["top_level_modules"]) <= set(
        pyfunc.SERVING_REQUIREMENTS
    )


def _third_party_imports(files: Iterable[str], loaded: list[str]) -> set[str]:
    """Distributions of the top-level modules that ``files`` import and that were loaded."""
    import importlib.metadata

    names: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(Path(file).read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    names = (names & set(loaded)) - set(sys.stdlib_module_names) - {"negrec", "__future__"}
    distributions = importlib.metadata.packages_distributions()
    found = set()
    for name in names:
        owners = distributions.get(name, [name])
        found.add("mlflow" if "mlflow" in owners else owners[0])
    return found


# --- mlflow models serve ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(champion: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow models serve`` of the champion, where negrec is not installed; its URL."""
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = without_negrec(folder / "site") | {"MLFLOW_TRACKING_URI": champion}
    command = [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", CHAMPION]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    log = (folder / "server.log").open("w")
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            log.flush()
            assert process.poll() is None, (folder / "server.log").read_text()[-3000:]
            assert time.monotonic() - started < 180, "no /ping answer within 180 s"
            time.sleep(0.5)
        print(f"mlflow models serve answered /ping after {time.monotonic() - started:.1f} s")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


def _post(url: str, body: bytes | str | dict) -> tuple[int, str]:
    data = (
        body
        if isinstance(body, bytes)
        else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    )
    request = urllib.request.Request(
        f"{url}/invocations", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_served_answers_top_k(server: str, champion: str, histories: list[list[str]]) -> None:
    long, short = histories
    records = [{"history": " ".join(long), "k": 5}, {"history": short, "k": 3}]
    status, body = _post(server, {"dataframe_records": records})
    assert status == 200, body
    first, second = json.loads(body)["predictions"]
    expected = recommend(CHAMPION, [long], k=5, tracking_uri=champion)[0]
    assert first["items"] == expected.items and len(first["items"]) == 5
    assert first["scores"] == sorted(first["scores"], reverse=True)
    assert not set(first["items"]) & _items(long), "seen and rejected items are excluded"
    assert first["unknown_items"] == []
    assert len(second["items"]) == 3 and not set(second["items"]) & _items(short)
    assert second["unknown_items"] == [UNKNOWN]
    # dataframe_split, and a row without k next to one with it: the default, 10.
    rows = [[" ".join(short[1:]), None], [short[1:], 2]]
    split = {"dataframe_split": {"columns": ["history", "k"], "data": rows}}
    status, body = _post(server, split)
    assert status == 200, body
    default, two = json.loads(body)["predictions"]
    assert len(default["items"]) == 10 and default["unknown_items"] == []
    assert two["items"] == default["items"][:2]


OURS, MLFLOWS = "INVALID_PARAMETER_VALUE", "BAD_REQUEST"  # MLflow's own: body not JSON


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"dataframe_records": [{"history": "12:x"}]}, OURS, "token '12:x' is malformed"),
        ({"dataframe_records": [{"items": "12:+"}]}, OURS, "missing inputs ['history']"),
        ({"dataframe_records": [{"history": "12:+", "k": 0}]}, OURS, "k=0 must lie in 1.."),
        ({"dataframe_records": [{"history": "12:+", "k": 2.5}]}, OURS, "k=2.5 is not a whole"),
        ({"dataframe_records": [{"history": "1:+", "k": "ten"}]}, OURS, "k='ten' is not a whole"),
        ({"dataframe_records": [{"history": f"{UNKNOWN}:+"}]}, OURS, "has no item the model"),
        ({"dataframe_records": [{"history": []}]}, OURS, "history 1 is empty"),
        ({"dataframe_records": [{"history": 12}]}, OURS, "a history must be a string"),
        ({"dataframe_records": []}, OURS, "missing inputs ['history']"),
        ("history=12:+", MLFLOWS, "valid JSON"),
    ],
    ids=[
        "bad-token",
        "no-history",
        "k-0",
        "k-fraction",
        "k-text",
        "only-unknown",
        "empty-history",
        "history-number",
        "no-rows",
        "not-json",
    ],
)
def test_served_rejects_malformed_requests(
    server: str, body: dict | str, code: str, message: str
) -> None:
    status, text = _post(server, body)
    assert status == 400, text
    error = json.loads(text)
    assert error["error_code"] == code, error
    assert message in error["message"], error["message"]
    assert "Traceback" not in text and "stack_trace" not in error
