"""The worked examples of docs/prepare.md, run as written, and ``negrec prepare`` on the
table readers' inputs: headerless CSV, TSV, JSON lines, unreadable files.

The examples' convention (docs/prepare.md states it too): an example runs from
``<!-- example: NAME -->`` to ``<!-- /example -->``. In it, a fenced block whose
preceding line is a path in backquotes followed by a colon is a file to write, a
``python`` block is run, and each line of a ``bash`` block is a ``negrec`` command (a
trailing backslash continues it), all in document order in a fresh directory.
"""

from __future__ import annotations

import json
import random
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from negrec.cli import main as cli_main
from negrec.data import loaders
from negrec.data.actions import build_mapping, default_mapping_path
from negrec.data.files import read_parquet
from negrec.data.manifest import MANIFEST

DOC = Path(__file__).resolve().parent.parent / "docs" / "prepare.md"
EXAMPLE = re.compile(r"^<!-- example: ([\w-]+) -->\n(.*?)^<!-- /example -->$", re.S | re.M)
BLOCK = re.compile(r"(?:^`([^`\n]+)`:\n\n)?^```(\w*)\n(.*?)^```$", re.S | re.M)


@dataclass(frozen=True)
class Step:
    """One block of an example: a file to write, Python to run or commands to run."""

    kind: str  # "file", "python" or "bash"
    body: str
    path: str | None = None


def examples() -> dict[str, list[Step]]:
    """Every example of docs/prepare.md by name, its blocks in document order."""
    found: dict[str, list[Step]] = {}
    for name, text in EXAMPLE.findall(DOC.read_text()):
        assert name not in found, f"two examples named {name} in {DOC}"
        steps = []
        for path, language, body in BLOCK.findall(text):
            kind = "file" if path else language
            assert kind in ("file", "python", "bash"), f"{name}: a ```{language} block"
            steps.append(Step(kind, body, path or None))
        found[name] = steps
    return found


def commands(body: str) -> list[list[str]]:
    """The ``negrec`` commands of a bash block, as argument lists for the CLI."""
    lines = [line for line in body.replace("\\\n", " ").splitlines() if line.strip()]
    parsed = [shlex.split(line) for line in lines]
    assert all(words[0] == "negrec" for words in parsed), f"not a negrec command: {body}"
    return [words[1:] for words in parsed]


def run_example(steps: list[Step], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Run the steps in the current directory; the last command's ``--out`` and output."""
    out, stdout = "", ""
    for step in steps:
        if step.kind == "file":
            assert step.path is not None
            Path(step.path).parent.mkdir(parents=True, exist_ok=True)
            Path(step.path).write_text(step.body)
        elif step.kind == "python":
            exec(compile(step.body, "docs/prepare.md", "exec"), {})
        else:
            for args in commands(step.body):
                code = cli_main(args)
                captured = capsys.readouterr()
                assert code == 0, captured.err
                out, stdout = args[args.index("--out") + 1], captured.out
    return out, stdout


def prepared_counts(out: str) -> dict[str, object]:
    """What an example is checked on: row accounting, users, splits, negative actions."""
    manifest = json.loads((Path(out) / MANIFEST).read_text())
    prepared = loaders.load_prepared(out)
    train = loaders.read_split(prepared, "train")
    actions = Counter(a for row in train["actions"].to_pylist() for a in row)
    return {
        "rows_in": manifest["rows_in"],
        "rows_used": manifest["rows_used"],
        "dropped": manifest["dropped"],
        "users_out": manifest["users_out"],
        "splits": tuple(manifest["splits"][s]["rows"] for s in ("train", "val", "test")),
        "train_negatives": actions[1],
    }


def counts(
    rows: tuple[int, int], dropped: dict[str, int], users: int, splits: tuple, negatives: int
):
    """An expected ``prepared_counts``: (rows in, rows used), drops, users kept,
    train/val/test rows and negative actions in the training rows."""
    return {
        "rows_in": rows[0],
        "rows_used": rows[1],
        "dropped": dropped,
        "users_out": users,
        "splits": splits,
        "train_negatives": negatives,
    }


EXPECTED = {
    "movielens": counts((16, 15), {"ignored_rating": 1}, 4, (3, 1, 2), 1),
    "movielens-csv": counts((14, 13), {"ignored_rating": 1}, 3, (2, 1, 1), 2),
    "retailrocket": counts((13, 13), {}, 3, (3, 1, 3), 4),
    "yoochoose": counts((13, 13), {}, 3, (3, 1, 3), 7),
    "table-csv": counts((12, 11), {"ignored_event": 1}, 3, (2, 1, 3), 2),
    "table-headerless-csv": counts((13, 11), {"null_id": 1, "short_sequence": 1}, 3, (2, 1, 3), 1),
    "table-tsv": counts((11, 11), {}, 3, (2, 1, 3), 1),
    "table-jsonl": counts((11, 11), {}, 3, (2, 1, 3), 2),
    "table-parquet": counts((11, 11), {}, 3, (3, 1, 3), 2),
    "synthetic": counts((4000, 4000), {}, 200, (198, 20, 200), 975),
    "sasrec": counts((20, 20), {}, 3, (3, 1, 2), 0),
}


def test_every_example_in_the_doc_is_run():
    assert sorted(examples()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_doc_example_runs_as_written(ray_session, name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out, stdout = run_example(examples()[name], capsys)
    assert prepared_counts(out) == EXPECTED[name]
    dropped = EXPECTED[name]["dropped"]
    assert f"dropped {sum(dropped.values()):,} of {EXPECTED[name]['rows_in']:,} rows" in stdout


def test_jsonl_example_keeps_text_ids(ray_session, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out, _ = run_example(examples()["table-jsonl"], capsys)
    prepared = loaders.load_prepared(out)
    vocab = read_parquet(f"{out}/vocab.parquet", None)
    assert sorted(vocab["item_id"].to_pylist()) == ["sku-A1", "sku-B2", "sku-C3", "sku-D4"]
    users = loaders.read_split(prepared, "test")["user_id"].to_pylist()
    assert sorted(users) == ["u-007", "u-012", "u-031"]


def test_the_doc_states_the_console_line_of_the_headerless_example(
    ray_session, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    _, stdout = run_example(examples()["table-headerless-csv"], capsys)
    line = next(line for line in stdout.splitlines() if line.startswith("dropped "))
    assert line == "dropped 2 of 13 rows: null_id 1, short_sequence 1 (reasons: docs/prepare.md)"
    assert f"`{line}`" in DOC.read_text()


# --- the command line ---------------------------------------------------------------


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli_main(args)
    except SystemExit as stop:  # argparse: --help, --print-mapping, usage errors
        code = int(stop.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("fmt", ["movielens", "table"])
def test_print_mapping_prints_the_packaged_default(fmt, capsys):
    code, stdout, _ = run_cli(["prepare", "--print-mapping", fmt], capsys)
    assert code == 0
    assert stdout == default_mapping_path(fmt).read_text()
    build_mapping(yaml.safe_load(stdout))  # a valid starting point for --actions


def test_print_mapping_refuses_a_format_without_one(capsys):
    code, _, stderr = run_cli(["prepare", "--print-mapping", "sasrec"], capsys)
    assert code == 2 and "invalid choice: 'sasrec'" in stderr


def test_help_points_to_the_formats_doc(capsys):
    code, stdout, _ = run_cli(["prepare", "--help"], capsys)
    assert code == 0 and "--print-mapping FORMAT" in stdout
    assert "docs/prepare.md" in " ".join(stdout.split())


def _random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(6000))


def _truncated_parquet(path: Path) -> None:
    table = pa.table({"user_id": list(range(500)), "item_id": [1] * 500, "timestamp": [9] * 500})
    pq.write_table(table, path)
    path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.parametrize(
    ("name", "write", "expected"),
    [
        ("log.csv", _random_bytes, "cannot read as CSV with a header row: its start is not UTF-8"),
        ("log.tsv", _random_bytes, "cannot read as TSV (tab-separated) with a header row"),
        ("log.jsonl", _random_bytes, "cannot read as JSON lines (one JSON object per line)"),
        ("log.parquet", _random_bytes, "cannot read as Parquet: Parquet magic bytes not found"),
        ("log.parquet", _truncated_parquet, "cannot read as Parquet: Parquet magic bytes"),
        (
            "log.jsonl",
            lambda p: p.write_text('{"user_id": 1, "item_id": 2}\n\n{"user_id": 1, item_id: 3}\n'),
            ", row 3: cannot read as JSON lines (one JSON object per line): JSON parse error",
        ),
    ],
    ids=[
        "random-csv",
        "random-tsv",
        "random-jsonl",
        "random-parquet",
        "truncated-parquet",
        "bad-json",
    ],
)
def test_unreadable_file_fails_in_one_line_naming_it(
    ray_session, tmp_path, capsys, name, write, expected
):
    events = tmp_path / name
    write(events)
    args = ["prepare", "--format", "table", "--events", str(events), "--out", str(tmp_path / "out")]
    code, _, stderr = run_cli(args, capsys)
    assert code == 1, stderr
    said = [line for line in stderr.splitlines() if line.startswith("negrec prepare:")]
    assert len(said) == 1 and said[0].startswith(f"negrec prepare: error: {events}"), stderr
    assert expected in said[0] and len(said[0]) < 400, said[0]
    assert not any(ray in stderr for ray in ("UDF", "RayTaskError", "ArrowInvalid")), stderr
    assert not (tmp_path / "out").exists()


def test_dropped_rows_are_counted_and_said_on_the_console(ray_session, tmp_path, capsys):
    """An empty id and times before 1970 or far ahead are dropped, counted, and said."""
    (tmp_path / "log.csv").write_text(
        "user_id,item_id,timestamp,event\n"
        + "".join(
            f"{u},{(u + i) % 6},{1_700_000_000 + 60 * i},buy\n"
            for u in range(1, 11)
            for i in range(4)
        )
        + ",3,1700000999,buy\n1,9,-86400,buy\n2,9,-1,buy\n3,9,4102444800,buy\n"
    )
    (tmp_path / "map.yaml").write_text("events: {buy: positive}\n")
    args = [
        *("prepare", "--format", "table", "--events", str(tmp_path / "log.csv")),
        *("--actions", str(tmp_path / "map.yaml"), "--out", str(tmp_path / "out"), "--json"),
    ]
    code, stdout, stderr = run_cli(args, capsys)
    assert code == 0, stderr
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["dropped"] == {
        "null_id": 1,
        "timestamp_before_1970": 2,
        "timestamp_in_future": 1,
    }
    assert manifest["rows_in"] == 44 == manifest["rows_used"] + 4
    assert (
        "dropped 4 of 44 rows: timestamp_before_1970 2, null_id 1, timestamp_in_future 1" in stdout
    )
