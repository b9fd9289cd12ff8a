"""Adapters and action mappings on tiny hand-written files in each public layout."""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from negrec import storage
from negrec.config import ConfigError
from negrec.data import adapters
from negrec.data.actions import build_mapping, load_mapping
from negrec.data.adapters import discover, iter_normalised, normalise, read_file
from negrec.errors import NegrecError
from negrec.generate import GenerateConfig, run

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
    monkeypatch.setattr(adapters, "CSV_BLOCK_BYTES", 4096)
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
    with pytest.raises(NegrecError, match=r"fake\.parquet: not a readable Parquet file"):
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
