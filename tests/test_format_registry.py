"""Formats are one registry (``negrec.data.formats``): every entry is complete, every
consumer reads the registry, and a format added there is usable without touching any
other module."""

from __future__ import annotations

import ast
import gzip
import pickle
import re
from pathlib import Path

import pytest
import yaml

from negrec.config import ConfigError
from negrec.data import formats
from negrec.data.actions import build_mapping, default_mapping_text, load_mapping
from negrec.data.adapters import discover, iter_normalised, read_file
from negrec.data.discovery import Named
from negrec.data.formats import Format, format_names, get_format
from negrec.data.layouts import Layout
from tests.test_formats import run_cli

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "prepare.md"


def format_choices(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The ``--format`` choices ``negrec prepare --help`` shows."""
    code, stdout, _ = run_cli(["prepare", "--help"], capsys)
    assert code == 0
    found = re.search(r"--format \{([^}]*)\}", stdout)
    assert found, stdout
    return found[1].split(",")


# --- every entry is complete --------------------------------------------------------


@pytest.mark.parametrize("name", format_names())
def test_every_entry_has_discovery_layouts_and_a_mapping_or_is_presplit(name):
    entry = get_format(name)
    assert entry.name == name and entry.description
    assert callable(entry.discovery.find) and entry.layouts
    if entry.presplit:
        assert entry.mapping is None and name not in format_names(mapped=True)
        with pytest.raises(ConfigError, match="carries no actions"):
            load_mapping(name)
    else:
        assert entry.mapping is not None and entry.mapping.is_file()
        assert entry.mapping.parent == formats.MAPPINGS  # package data, next to the others
        load_mapping(name)  # a valid mapping
        assert default_mapping_text(name) == entry.mapping.read_text()


def test_prepare_offers_exactly_the_registered_formats(capsys):
    assert format_choices(capsys) == list(format_names())
    for name in format_names():
        code, stdout, stderr = run_cli(["prepare", "--print-mapping", name], capsys)
        if get_format(name).presplit:
            assert code == 2 and f"invalid choice: '{name}'" in stderr
        else:
            assert code == 0 and stdout == default_mapping_text(name)


def test_unknown_format_names_the_registered_ones():
    with pytest.raises(ConfigError) as caught:
        get_format("lastfm")
    assert str(caught.value) == (
        f"unknown --format 'lastfm'; choose one of {', '.join(format_names())}"
    )


def test_the_doc_has_a_section_and_a_table_row_per_format():
    text = DOC.read_text()
    synopsis = re.search(r"\[--format ([\w|-]+)\]", text)
    assert synopsis and sorted(synopsis[1].split("|")) == sorted(format_names())
    for name in format_names():
        assert f"\n| `{name}` |" in text, f"docs/prepare.md, Formats: no table row for {name}"
        heading = f"\n### `{name}`: {get_format(name).description}\n"
        assert heading in text, f"docs/prepare.md: no section {heading.strip()}"


def test_no_other_module_lists_or_compares_format_names():
    """Outside the registry, no collection of format names and no ``format == "x"``."""
    names = set(format_names())
    found = []
    for path in sorted((ROOT / "negrec").rglob("*.py")):
        if path.name == "formats.py" and path.parent.name == "data":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                items = node.elts
                named = [e for e in items if isinstance(e, ast.Constant) and e.value in names]
                if len(named) >= 2:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            elif isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if any(isinstance(o, ast.Constant) and o.value in names for o in operands):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"format names outside negrec/data/formats.py: {found}"


# --- a format added to the registry only --------------------------------------------


@pytest.fixture
def pipes(tmp_path, monkeypatch) -> Format:
    """A made-up format, ``clicks*.psv`` files of ``user|item|time`` lines, registered
    for one test (the registry is restored afterwards)."""
    monkeypatch.setattr(formats, "REGISTRY", dict(formats.REGISTRY))
    mapping = tmp_path / "pipes.yaml"
    mapping.write_text(
        "# clicks.psv: user|item|time (ms), no header; every row a click\n"
        "columns: {user_id: user, item_id: item, timestamp: time, event: event}\n"
        "timestamp_unit: ms\n"
        "events: {click: positive}\n"
    )
    layout = Layout(
        "csv",
        "user|item|time, no header",
        names=("user", "item", "time"),
        delimiter="|",
        quoted=False,
        event="click",
    )
    return formats.register(
        Format(
            "pipes",
            "pipe-separated clicks",
            Named("clicks", ".psv", "pipes", "clicks.psv"),
            {"pipes": layout},
            mapping,
        )
    )


def test_a_registered_format_is_offered_discovered_read_and_mapped(pipes, tmp_path, capsys):
    assert format_names()[-1] == "pipes" and "pipes" in format_choices(capsys)
    code, stdout, _ = run_cli(["prepare", "--print-mapping", "pipes"], capsys)
    assert code == 0 and stdout == pipes.mapping.read_text()
    build_mapping(yaml.safe_load(stdout))

    events = tmp_path / "log"
    events.mkdir()
    (events / "clicks-1.psv").write_text("1|10|1000\n1|11|2000\n")
    with gzip.open(events / "clicks-2.psv.gz", "wt") as packed:
        packed.write("2|10|3000\n|12|4000\n")
    (events / "notes.txt").write_text("not clicks")
    spec = discover(str(events), "pipes", None)
    assert [uri.rsplit("/", 1)[-1] for uri in spec.files] == ["clicks-1.psv", "clicks-2.psv.gz"]

    mapping = load_mapping("pipes")
    rows, dropped = [], {}
    for file_uri in spec.files:
        for batch in iter_normalised(spec, file_uri, mapping):
            rows += batch.table.select(["user_id", "item_id", "timestamp", "action"]).to_pylist()
            dropped.update(batch.dropped)
    assert [tuple(row.values()) for row in rows] == [
        (1, 10, 1000, 0),
        (1, 11, 2000, 0),
        (2, 10, 3000, 0),
    ]
    assert dropped == {"null_id": 1}

    (tmp_path / "over.yaml").write_text("delimiter: ';'\n")
    with pytest.raises(ConfigError, match="delimiter: only --format table reads this key"):
        load_mapping("pipes", tmp_path / "over.yaml")
    with pytest.raises(ConfigError, match=r"choose one of .*, pipes$"):
        get_format("lastfm")


def test_a_registered_format_reads_where_the_registry_does_not_know_it(pipes, tmp_path):
    """A Ray task imports the built-in registry only: the discovered spec carries the
    format's layouts, so reading needs no registration there."""
    (tmp_path / "clicks.psv").write_text("5|6|7\n")
    spec = pickle.loads(pickle.dumps(discover(str(tmp_path), "pipes", None)))
    del formats.REGISTRY["pipes"]
    (batch,) = read_file(spec, spec.files[0])
    assert batch.to_pylist() == [{"user": "5", "item": "6", "time": "7", "event": "click"}]
