"""Adapters and action mappings on tiny hand-written files in each public layout."""

from __future__ import annotations

import gzip
import random
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from negrec import storage
from negrec.config import ConfigError
from negrec.data import readers
from negrec.data.actions import build_mapping, load_mapping
from negrec.data.adapters import discover, iter_normalised, normalise, read_file
from negrec.data.generated_log import GenerateConfig, run
from negrec.errors import NegrecError

FIXTURES = Path(__file__).parent / "fixtures"
POS, NEG = 0, 1


def _load(uri, fmt, actions=None, options=None):
    """All canonical rows of a source, and the summed drop counts."""
    spec = discover(str(uri), fmt, options)
    mapping = load_mapping(fmt, actions)
    tables, dropped, rows_in = [], {}, 0
    for file_uri in spec.files:
        for result in iter_normalised(spec, file_uri, mapping, options):
            assert result.rows_in == result.rows_kept + sum(result.dropped.values())
            tables.append(result.table)
            rows_in += result.rows_in
            for reason, count in result.dropped.items():
                dropped[reason] = dropped.get(reason, 0) + count
    table = pa.concat_tables(tables) if tables else None
    return table, dropped, rows_in


def _rows(table, *columns):
    names = columns or ("user_id", "item_id", "timestamp", "action", "file_index", "row")
    return list(zip(*(table[c].to_pylist() for c in names), strict=True))


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


# --- each format on its fixture -----------------------------------------------------


def test_movielens_dat_ratings_map_to_actions():
    table, dropped, rows_in = _load(FIXTURES / "movielens", "movielens")
    assert rows_in == 8 and dropped == {"ignored_rating": 1}  # the rating of 3
    assert table.schema.names == ["user_id", "item_id", "timestamp", "action", "file_index", "row"]
    assert [str(t) for t in table.schema.types] == [
        "int64",
        "int64",
        "int64",
        "int8",
        "int32",
        "int64",
    ]
    assert _rows(table)[:4] == [
        (1, 21, 964982703000, POS, 0, 1),
        (1, 7, 964982931000, NEG, 0, 2),
        (1, 33, 964983815000, POS, 0, 3),
        (1, 9, 964984100000, NEG, 0, 5),
    ]


def test_movielens_csv_half_stars_between_two_and_four_are_ignored():
    table, dropped, rows_in = _load(FIXTURES / "movielens-csv" / "ratings.csv", "movielens-csv")
    assert rows_in == 7 and dropped == {"ignored_rating": 2}  # 2.5 and 3.5
    assert _rows(table, "user_id", "item_id", "action", "row") == [
        (1, 102, POS, 2),
        (1, 140, NEG, 3),
        (7, 31, POS, 5),
        (7, 96, NEG, 6),
        (7, 102, POS, 7),
    ]


def test_retailrocket_views_are_negative_and_visitor_zero_is_kept():
    table, dropped, rows_in = _load(FIXTURES / "retailrocket", "retailrocket")
    assert rows_in == 7 and dropped == {}
    assert _rows(table, "user_id", "item_id", "timestamp", "action")[:3] == [
        (2575, 3559, 1433221332117, NEG),
        (2575, 2486, 1433221400000, NEG),
        (2575, 3559, 1433221999827, POS),
    ]
    assert 0 in table["user_id"].to_pylist()


def test_yoochoose_merges_clicks_then_buys_with_the_session_as_user():
    table, dropped, rows_in = _load(FIXTURES / "yoochoose", "yoochoose")
    assert rows_in == 7 and dropped == {}
    rows = _rows(table)
    assert rows[0] == (1, 214536502, _ms("2014-04-07T10:51:09.277"), NEG, 0, 1)
    assert rows[5:] == [
        (1, 214536502, _ms("2014-04-07T10:56:00"), POS, 1, 1),
        (2, 214537888, _ms("2014-04-06T18:44:58.314"), POS, 1, 2),
    ]


def test_yoochoose_times_without_zone_are_utc_and_bad_times_are_named(tmp_path):
    _write(tmp_path / "buys.dat", "")
    clicks = tmp_path / "clicks.dat"
    _write(clicks, "1,2014-04-07T10:51:09.5,7,0\n1,2014-04-07T10:52:09+02:00,8,0\n")
    table, _, _ = _load(tmp_path, "yoochoose")
    assert table["timestamp"].to_pylist() == [
        _ms("2014-04-07T10:51:09.500"),
        _ms("2014-04-07T08:52:09"),
    ]
    _write(clicks, "1,2014-04-07T10:51:09.5Z,7,0\n1,2014-13-07T10:52:09Z,8,0\n,,,\n")
    with pytest.raises(NegrecError, match=r"clicks\.dat, row 2: timestamp '2014-13-07T10:52:09Z'"):
        _load(tmp_path, "yoochoose")
    actions = _write(tmp_path / "q.yaml", "on_bad_row: quarantine\n")
    table, dropped, rows_in = _load(tmp_path, "yoochoose", actions)
    assert dropped == {"unparsable_timestamp": 1, "empty_row": 1} and rows_in == 3
    assert table["item_id"].to_pylist() == [7]


def test_table_csv_with_own_columns_string_ids_and_ms():
    table, dropped, _ = _load(
        FIXTURES / "table" / "interactions.csv", "table", FIXTURES / "table" / "actions.yaml"
    )
    assert dropped == {"ignored_event": 1}
    assert table.schema.field("user_id").type == pa.string()
    assert _rows(table, "user_id", "item_id", "timestamp", "action") == [
        ("u1", "p9", 1700000000000, POS),
        ("u1", "p3", 1700000005000, NEG),
        ("u2", "p9", 1700000100000, POS),
        ("u2", "p1", 1700000200000, NEG),
    ]


def test_table_parquet_with_arrow_timestamps(tmp_path):
    times = pa.array([1_000, 2_000, 3_000], pa.timestamp("s", tz="UTC"))
    data = pa.table({"u": [5, 5, 6], "i": [1, 2, 1], "t": times, "e": ["a", "b", "a"]})
    pq.write_table(data, tmp_path / "log.parquet")
    actions = _write(
        tmp_path / "map.yaml",
        "columns: {user_id: u, item_id: i, timestamp: t, event: e}\n"
        "events: {a: positive, b: negative}\n",
    )
    table, _, _ = _load(tmp_path, "table", actions)
    assert _rows(table, "user_id", "timestamp", "action") == [
        (5, 1_000_000, POS),
        (5, 2_000_000, NEG),
        (6, 3_000_000, POS),
    ]


def test_synthetic_output_reads_back_with_its_mapping(tmp_path):
    out = str(tmp_path / "g")
    summary = run(GenerateConfig(out=out, users=30, items=40, events=2_000, chunk_events=900))
    table, dropped, rows_in = _load(out, "synthetic")
    assert rows_in == table.num_rows == 2_000 and dropped == {}
    negatives = sum(summary["event_counts"].get(e, 0) for e in ("skip", "dislike"))
    assert table["action"].to_pylist().count(NEG) == negatives
    assert table["file_index"].to_pylist()[-1] == 2


def test_gzipped_file_reads_like_the_plain_one(tmp_path):
    source = FIXTURES / "movielens" / "ratings-sample.dat"
    with open(source, "rb") as plain, gzip.open(tmp_path / "ratings.dat.gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)
    assert (
        _load(tmp_path, "movielens")[0]
        .drop(["file_index"])
        .equals(_load(source, "movielens")[0].drop(["file_index"]))
    )


def test_reads_from_s3(s3_bucket):
    for name in ("clicks.dat", "buys.dat"):
        storage.write_bytes(f"{s3_bucket}/yc/{name}", (FIXTURES / "yoochoose" / name).read_bytes())
    remote, _, _ = _load(f"{s3_bucket}/yc", "yoochoose")
    assert remote.equals(_load(FIXTURES / "yoochoose", "yoochoose")[0])


# --- input that cannot be trusted ---------------------------------------------------

RR_HEADER = "timestamp,visitorid,event,itemid,transactionid\n"


def test_misnamed_column_names_file_expected_columns_and_fix(tmp_path):
    path = _write(
        tmp_path / "events.csv", "timestamp,visitor_id,event,itemid,transactionid\n1,2,view,3,\n"
    )
    with pytest.raises(NegrecError) as caught:
        _load(path, "retailrocket")
    message = str(caught.value)
    assert path in message and "header" in message
    assert "missing column(s) 'visitorid' (user_id)" in message
    assert "Expected layout: header timestamp,visitorid,event,itemid,transactionid" in message
    assert "needed: visitorid (user_id), itemid (item_id)" in message
    assert "found: timestamp, visitor_id, event" in message
    assert "--actions" in message and "retailrocket.yaml" in message


def test_missing_column_in_movielens_csv(tmp_path):
    path = _write(tmp_path / "ratings.csv", "userId,movieId,timestamp\n1,2,3\n")
    with pytest.raises(NegrecError, match=r"missing column\(s\) 'rating' \(rating\)"):
        _load(path, "movielens-csv")


def test_unparsable_timestamp_names_row_value_and_fix(tmp_path):
    path = _write(tmp_path / "events.csv", RR_HEADER + "1,2,view,3,\n2,2,view,4,\nsoon,2,view,5,\n")
    with pytest.raises(NegrecError) as caught:
        _load(path, "retailrocket")
    message = str(caught.value)
    assert f"{path}, row 3: timestamp 'soon'" in message
    assert "timestamp_unit" in message and "on_bad_row: quarantine" in message


def test_quarantine_counts_bad_rows_instead(tmp_path):
    path = _write(
        tmp_path / "events.csv",
        RR_HEADER
        + "1,2,view,3,\nsoon,2,view,5,\n4,x7,view,5,\n5,2,view,,\n6,-1,view,5,\n7,2,view,5,\n",
    )
    actions = _write(tmp_path / "q.yaml", "on_bad_row: quarantine\n")
    table, dropped, rows_in = _load(path, "retailrocket", actions)
    assert dropped == {
        "unparsable_timestamp": 1,
        "unparsable_user_id": 1,
        "null_id": 1,
        "negative_id": 1,
    }
    assert rows_in == 6 and _rows(table, "row") == [(1,), (6,)]


def test_unparsable_id_is_an_error_by_default(tmp_path):
    path = _write(tmp_path / "events.csv", RR_HEADER + "1,2,view,3,\n2,2,view,item9,\n")
    with pytest.raises(
        NegrecError,
        match=r"row 2: item_id 'item9' \(column 'itemid'\) is not an integer id.*ids: string",
    ):
        _load(path, "retailrocket")


def test_empty_event_is_a_bad_row(tmp_path):
    path = _write(tmp_path / "events.csv", RR_HEADER + "1,2,view,3,\n2,2,,3,\n")
    with pytest.raises(NegrecError, match=r"row 2: event \(column 'event'\) is empty"):
        _load(path, "retailrocket")


def test_null_and_negative_ids_are_dropped_and_counted(tmp_path):
    path = _write(
        tmp_path / "events.csv", RR_HEADER + "1,,view,3,\n2,-4,view,3,\n3,8,view,-1,\n4,8,view,3,\n"
    )
    table, dropped, _ = _load(path, "retailrocket")
    assert dropped == {"null_id": 1, "negative_id": 2}
    assert _rows(table, "user_id", "row") == [(8, 4)]


def test_malformed_row_names_row_text_and_layout(tmp_path):
    path = _write(tmp_path / "ratings.dat", "1::2::5::100\n1::3::4\n1::4::5::300\n")
    with pytest.raises(NegrecError) as caught:
        _load(path, "movielens")
    message = str(caught.value)
    assert f"{path}, row 2: malformed row '1::3::4'" in message
    assert "UserID::MovieID::Rating::Timestamp" in message and "quarantine" in message


def test_movielens_row_with_stray_colons_is_malformed(tmp_path):
    path = _write(tmp_path / "ratings.dat", "1::2::5::100\n1:::2:5::300\n")
    with pytest.raises(NegrecError, match=r"row 2: malformed row, expected UserID::MovieID"):
        _load(path, "movielens")


def test_empty_lines_are_counted_and_row_numbers_stay_exact(tmp_path):
    path = _write(tmp_path / "ratings.dat", "1::2::5::100\n\n1::3::x\n1::4::5::300\n")
    actions = _write(tmp_path / "q.yaml", "on_bad_row: quarantine\n")
    table, dropped, rows_in = _load(path, "movielens", actions)
    assert rows_in == 4 and dropped == {"empty_row": 1, "malformed_row": 1}
    assert _rows(table, "item_id", "row") == [(2, 1), (4, 4)]


def test_row_numbers_stay_exact_across_batches_around_rejected_rows(tmp_path, monkeypatch):
    """The CSV parser reads ahead; rejected rows must still shift later rows exactly."""
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 4096)
    lines, expected = [], []
    for row in range(1, 20_001):
        if row % 97 == 0:
            lines.append("broken")
        elif row % 131 == 0:
            lines.append("")
        else:
            lines.append(f"{row},1,view,{row},")
            expected.append(row)
    path = _write(tmp_path / "events.csv", RR_HEADER + "\n".join(lines) + "\n")
    actions = _write(tmp_path / "q.yaml", "on_bad_row: quarantine\n")
    table, dropped, rows_in = _load(path, "retailrocket", actions)
    assert table["row"].to_pylist() == expected == table["item_id"].to_pylist()
    assert rows_in == 20_000
    assert dropped == {
        "malformed_row": 20_000 // 97,
        "empty_row": len(lines) - len(expected) - 20_000 // 97,
    }


def test_unknown_event_names_value_row_and_mapping_file(tmp_path):
    path = _write(tmp_path / "events.csv", RR_HEADER + "1,2,view,3,\n2,2,wishlist,3,\n")
    actions = _write(tmp_path / "q.yaml", "on_bad_row: quarantine\n")
    with pytest.raises(NegrecError) as caught:
        _load(path, "retailrocket", actions)  # quarantine does not hide a mapping gap
    message = str(caught.value)
    assert f"{path}, row 2: event 'wishlist'" in message
    assert '"wishlist": positive|negative|ignore' in message and "q.yaml" in message


def test_rating_outside_every_rule_is_an_error(tmp_path):
    actions = _write(tmp_path / "likes.yaml", "ratings: [{min: 4, action: positive}]\n")
    with pytest.raises(
        NegrecError, match=r"ratings-sample\.dat, row 2: rating '2' matches no rule.*likes\.yaml"
    ):
        _load(FIXTURES / "movielens", "movielens", actions)


def test_empty_input_sets_and_missing_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        NegrecError, match=r"no RetailRocket events\.csv found at .*empty.*--format"
    ):
        discover(str(tmp_path / "empty"), "retailrocket", None)
    only_clicks = tmp_path / "yc"
    _write(only_clicks / "clicks.dat", "1,2014-04-07T10:51:09.277Z,1,0\n")
    with pytest.raises(NegrecError, match=r"no YOOCHOOSE buys\.dat found at"):
        discover(str(only_clicks), "yoochoose", None)
    with pytest.raises(NegrecError, match=r"nothere.*does not exist"):
        discover(str(tmp_path / "nothere"), "movielens", None)
    with pytest.raises(NegrecError, match="not a finished `negrec generate` output"):
        discover(str(tmp_path / "empty"), "synthetic", None)
    with pytest.raises(NegrecError, match="unknown --format 'lastfm'"):
        discover(str(tmp_path), "lastfm", None)


def test_empty_file_yields_no_rows(tmp_path):
    path = _write(tmp_path / "ratings.dat", "")
    spec = discover(path, "movielens", None)
    assert list(read_file(spec, path, None)) == []


def test_not_a_parquet_file(tmp_path):
    _write(tmp_path / "fake.parquet", "not parquet at all")
    spec = discover(str(tmp_path), "table", None)
    with pytest.raises(
        NegrecError, match=r"fake\.parquet: cannot read as Parquet: Parquet magic bytes"
    ):
        list(read_file(spec, spec.files[0], None))


def test_normalise_needs_batches_from_read_file():
    batch = pa.record_batch({"user_id": [1], "item_id": [1], "timestamp": [1], "event": ["a"]})
    with pytest.raises(ValueError, match="read_file"):
        normalise(batch, load_mapping("synthetic"), "x", 1)


# --- mappings -----------------------------------------------------------------------


def test_mapping_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"evnts: unknown key"):
        build_mapping({"evnts": {"view": "negative"}})
    with pytest.raises(ConfigError, match=r"events\.view: .*'positive', 'negative' or 'ignore'"):
        build_mapping({"events": {"view": "bad"}})
    with pytest.raises(ConfigError, match="exactly one of 'events'"):
        build_mapping({"events": {}, "ratings": [{"min": 4, "action": "positive"}]})
    with pytest.raises(ConfigError, match=r"event value True is not a string; quote it"):
        build_mapping({"events": {True: "positive"}})
    with pytest.raises(ConfigError, match=r"ratings\.0: .*needs min, max or both"):
        build_mapping({"ratings": [{"action": "positive"}]})


def test_actions_file_overrides_the_default_key_by_key(tmp_path):
    actions = _write(
        tmp_path / "a.yaml", "events: {view: ignore, addtocart: positive, transaction: positive}\n"
    )
    mapping = load_mapping("retailrocket", actions)
    assert mapping.columns.user_id == "visitorid" and mapping.timestamp_unit == "ms"
    assert mapping.events == {"view": "ignore", "addtocart": "positive", "transaction": "positive"}
    table, dropped, _ = _load(FIXTURES / "retailrocket", "retailrocket", actions)
    assert dropped == {"ignored_event": 4} and table.num_rows == 3
    with pytest.raises(ConfigError, match="cannot read action mapping"):
        load_mapping("retailrocket", tmp_path / "missing.yaml")


# --- table files: headerless CSV, TSV, JSON lines; files that are no table at all ----

EVENTS_MAP = (
    "columns: {user_id: u, item_id: i, timestamp: t, event: e}\n"
    "events: {a: positive, b: negative}\n"
)


def test_headerless_csv_takes_column_order_and_counts_rows_from_line_one(tmp_path):
    path = _write(tmp_path / "log.csv", "5,1,100,a\n5,2,200,b\n5,3,300\n6,1,400,a\n")
    actions = _write(
        tmp_path / "m.yaml", EVENTS_MAP + "header: false\ncolumn_order: [u, i, t, e]\n"
    )
    with pytest.raises(NegrecError) as caught:
        _load(path, "table", actions)
    assert f"{path}, row 3: malformed row '5,3,300'" in str(caught.value)
    assert "CSV without a header, columns u,i,t,e (column_order)" in str(caught.value)
    path = _write(tmp_path / "log.csv", "5,1,100,a\n5,2,200,b\n6,1,400,a\n")
    table, dropped, rows_in = _load(path, "table", actions)
    assert rows_in == 3 and dropped == {}
    assert _rows(table, "user_id", "item_id", "timestamp", "action", "row") == [
        (5, 1, 100_000, POS, 1),
        (5, 2, 200_000, NEG, 2),
        (6, 1, 400_000, POS, 3),
    ]


def test_tsv_has_a_header_and_delimiter_sets_another_separator(tmp_path):
    _write(tmp_path / "a.tsv", "u\ti\tt\te\n5\t1\t100\ta\n")
    actions = _write(tmp_path / "m.yaml", EVENTS_MAP)
    assert _rows(_load(tmp_path / "a.tsv", "table", actions)[0], "item_id", "row") == [(1, 1)]
    _write(tmp_path / "b.csv", "u;i;t;e\n5;2;200;b\n")
    semicolon = _write(tmp_path / "s.yaml", EVENTS_MAP + "delimiter: ';'\n")
    assert _rows(_load(tmp_path / "b.csv", "table", semicolon)[0], "item_id", "action") == [
        (2, NEG)
    ]


def test_jsonl_keeps_string_ids_and_numbers_rows_by_line(tmp_path):
    text = (
        '{"u": "007", "i": "p1", "t": 100, "e": "a"}\n'
        "\n"
        '{"u": "007", "i": "p2", "t": 200, "e": "b", "extra": [1, 2]}\n'
        '{"u": "",    "i": "p3", "t": 300, "e": "a"}\n'
    )
    with gzip.open(tmp_path / "log.jsonl.gz", "wt") as packed:
        packed.write(text)
    actions = _write(tmp_path / "m.yaml", EVENTS_MAP + "ids: string\n")
    table, dropped, rows_in = _load(tmp_path, "table", actions)
    assert rows_in == 4 and dropped == {"empty_row": 1, "null_id": 1}
    assert _rows(table, "user_id", "item_id", "action", "row") == [
        ("007", "p1", POS, 1),
        ("007", "p2", NEG, 3),
    ]


def test_jsonl_pieces_infer_their_own_types_and_keep_line_numbers(tmp_path, monkeypatch):
    """A field missing or null in the first lines, and blank lines across pieces."""
    monkeypatch.setattr(readers, "JSON_BLOCK_BYTES", 64)
    lines = ['{"u": 1, "i": 1, "t": 1, "e": "a"}', "", '{"u": 1, "i": 2, "t": null, "e": "a"}']
    lines += [f'{{"u": 2, "i": {n}, "t": {n}, "e": "b", "late": "x"}}' for n in range(3, 9)]
    path = _write(tmp_path / "log.ndjson", "\n".join(lines) + "\n\n")
    actions = _write(tmp_path / "m.yaml", EVENTS_MAP + "on_bad_row: quarantine\n")
    table, dropped, rows_in = _load(path, "table", actions)
    assert rows_in == 10 and dropped == {"empty_row": 2, "null_timestamp": 1}
    assert _rows(table, "row") == [(1,), *((n + 1,) for n in range(3, 9))]


def test_invalid_json_names_the_line(tmp_path):
    path = _write(tmp_path / "log.jsonl", '{"u": 1}\n\n{"u": 2}\n{"u": 3,}\n')
    with pytest.raises(NegrecError) as caught:
        _load(path, "table", _write(tmp_path / "m.yaml", EVENTS_MAP))
    assert str(caught.value).startswith(
        f"{path}, row 4: cannot read as JSON lines (one JSON object per line): JSON parse "
        "error: Missing a name for object member. Fix: check --format"
    )
    path = _write(tmp_path / "log.jsonl", '{"u": 1}\n{"u": "x"}\n')
    with pytest.raises(NegrecError, match=r"row 2: .*changed from number to string.*one JSON type"):
        _load(path, "table", _write(tmp_path / "m.yaml", EVENTS_MAP))


@pytest.mark.parametrize(
    ("name", "fmt", "layout"),
    [
        ("log.csv", "table", "CSV with a header row"),
        ("log.tsv.gz", "table", r"TSV \(tab-separated\) with a header row"),
        ("log.jsonl", "table", r"JSON lines \(one JSON object per line\)"),
        ("log.parquet", "table", "Parquet"),
        ("ratings.dat", "movielens", "UserID::MovieID::Rating::Timestamp, no header"),
        ("ratings.csv", "movielens-csv", "header userId,movieId,rating,timestamp"),
    ],
)
def test_random_bytes_are_one_short_error_naming_file_and_layout(tmp_path, name, fmt, layout):
    path = tmp_path / name
    data = random.Random(3).randbytes(5000)
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(NegrecError) as caught:
        _load(path, fmt)
    message = str(caught.value)
    assert re.match(rf"{re.escape(str(path))}: cannot read as {layout}: ", message), message
    assert "\n" not in message and len(message) - len(str(path)) < 240


def test_truncated_parquet_is_named(tmp_path):
    pq.write_table(pa.table({"user_id": [1, 2], "item_id": [3, 4]}), tmp_path / "t.parquet")
    (tmp_path / "t.parquet").write_bytes((tmp_path / "t.parquet").read_bytes()[:-9])
    with pytest.raises(NegrecError, match=r"t\.parquet: cannot read as Parquet: .*footer"):
        _load(tmp_path, "table")


def test_times_before_1970_and_more_than_a_day_ahead_are_dropped_and_counted(tmp_path):
    now = int(time.time())
    rows = [(1, 100), (2, -1), (3, -86_400), (4, now + 3_600), (5, now + 2 * 86_400)]
    path = _write(tmp_path / "log.csv", "u,i,t,e\n" + "".join(f"{u},1,{t},a\n" for u, t in rows))
    table, dropped, rows_in = _load(path, "table", _write(tmp_path / "m.yaml", EVENTS_MAP))
    assert dropped == {"timestamp_before_1970": 2, "timestamp_in_future": 1}
    assert rows_in == 5 and _rows(table, "user_id") == [(1,), (4,)]


def test_table_discovery_reads_every_table_suffix(tmp_path):
    for name in ("a.csv", "b.tsv.gz", "c.jsonl", "d.ndjson.zst", "e.parquet", "f.csv.bz2"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an event file")
    spec = discover(str(tmp_path), "table", None)
    names = [uri.rsplit("/", 1)[-1] for uri in spec.files]
    assert names == ["a.csv", "b.tsv.gz", "c.jsonl", "d.ndjson.zst", "e.parquet", "f.csv.bz2"]
    assert spec.layouts == ["csv", "tsv", "jsonl", "jsonl", "parquet", "csv"]


def test_layout_keys_are_validated_and_named():
    with pytest.raises(ConfigError, match=r"column_order: .*header: false needs column_order"):
        build_mapping({"events": {"a": "positive"}, "header": False})
    with pytest.raises(ConfigError, match=r"column_order: .*add header: false"):
        build_mapping({"events": {"a": "positive"}, "column_order": ["a"]})
    with pytest.raises(ConfigError, match=r"column_order: .*no column 'event' \(columns\.event\)"):
        build_mapping(
            {"events": {}, "header": False, "column_order": ["user_id", "item_id", "timestamp"]}
        )
    with pytest.raises(ConfigError, match=r"column_order: .*names 'ts' more than once"):
        build_mapping({"events": {}, "header": False, "column_order": ["ts", "ts"]})
    with pytest.raises(ConfigError, match=r"delimiter: .*one character"):
        build_mapping({"events": {}, "delimiter": "::"})


def test_layout_keys_are_refused_for_a_fixed_layout(tmp_path):
    actions = _write(tmp_path / "a.yaml", "header: false\n")
    with pytest.raises(ConfigError, match=r"header: only --format table reads this key"):
        load_mapping("movielens-csv", actions)
