"""Point-in-time training sets (reports/historical.py) over a real Parquet feature log + DuckDB.

Each test writes a tiny feature log in the exact layout the flow writes
(``features/<view>/date=YYYY-MM-DD/part-*.parquet``) and checks the point-in-time rule:
the row of the entity with the greatest (ts, seq) with ts <= t, of the current version,
nulls when there is none or it is older than the view's TTL.

Feature names are looked up in the registry by dtype, never hard-coded, so the tests hold
while views gain features.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import basketflow.reports.historical as historical
from basketflow.reports.historical import get_historical_features, historical_to_file
from basketflow.schemas.features import FeatureView, registry
from basketflow.sinks.offline_store import ARROW_TYPES

T0 = datetime(2011, 1, 4, 10, 0, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)


def feature_of(view: str, *dtypes: str) -> str:
    """The first feature of ``view`` with one of ``dtypes`` (tests never hard-code names)."""
    return next(f.name for f in registry()[view].features if f.dtype in dtypes)


SPEND = feature_of("customer", "float")    # customer:spend today
COUNT = feature_of("customer", "int")      # customer:baskets today
INVOICE = feature_of("basket", "str")      # basket:invoice today
VALUE = feature_of("basket", "float")      # basket:value today


def write_log(root: Path, view: FeatureView, rows: list[dict[str, Any]], *,
              day: str = "2011-01-04", name: str = "part-0.parquet",
              features: tuple[str, ...] | None = None) -> Path:
    """Write feature-log rows of ``view`` as the flow does; return the file.

    Each row gives ``entity_id``, ``ts`` (datetime or epoch seconds) and optionally ``seq``
    (default 0), ``version`` (default: the view's) and feature values (default null).
    ``features`` limits the feature columns written (an older definition's file).
    """
    names = view.feature_names if features is None else features
    types = {f.name: ARROW_TYPES[f.dtype] for f in view.features}
    schema = pa.schema([("entity_id", pa.string()), ("ts", pa.timestamp("s", tz="UTC")),
                        ("seq", pa.int64()), ("version", pa.string()),
                        *((n, types[n]) for n in names)])
    table = pa.Table.from_pylist(
        [{"seq": 0, "version": view.version, **row} for row in rows], schema=schema)
    directory = root / "features" / view.name / f"date={day}"
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, directory / name)
    return directory / name


def labels(*rows: tuple[Any, Any], id_column: str = "customer_id") -> pd.DataFrame:
    """Entity rows ``(id, timestamp)``."""
    return pd.DataFrame({id_column: [r[0] for r in rows], "timestamp": [r[1] for r in rows]})


def values(frame: pd.DataFrame, column: str) -> list[Any]:
    """A column as a list with every null as None (NaN, pd.NA, None alike)."""
    return [None if pd.isna(v) else v for v in frame[column]]


def test_no_leakage_a_row_at_t_is_in_a_row_one_second_later_is_not(tmp_path: Path) -> None:
    """Catches both ``>`` for ``>=`` (t must see the row at t) and looking ahead (t+1s)."""
    customer = registry()["customer"]
    write_log(tmp_path, customer, [
        {"entity_id": "17850", "ts": T0, SPEND: 1.0},
        {"entity_id": "17850", "ts": T0 + SECOND, SPEND: 2.0},
    ])
    rows = labels(("17850", T0 - SECOND), ("17850", T0), ("17850", T0 + SECOND / 2),
                  ("17850", T0 + SECOND), ("17850", T0 + 10 * SECOND))
    out = get_historical_features(tmp_path, rows, [f"customer:{SPEND}"])
    assert values(out, f"customer__{SPEND}") == [None, 1.0, 1.0, 2.0, 2.0]


def test_timestamps_naive_aware_and_iso_strings_mean_the_same_instant(tmp_path: Path) -> None:
    """Naive = UTC; offsets are honoured; ISO strings with or without a zone."""
    customer = registry()["customer"]
    write_log(tmp_path, customer, [{"entity_id": "1", "ts": T0, SPEND: 1.0},
                                   {"entity_id": "1", "ts": T0 + SECOND, SPEND: 2.0}])
    forms = [T0.replace(tzinfo=None), T0, "2011-01-04T10:00:00", "2011-01-04 10:00:00Z",
             "2011-01-04T11:00:00+01:00", "2011-01-04T09:59:59.999999"]
    out = get_historical_features(tmp_path, labels(*[("1", f) for f in forms]),
                                  [f"customer:{SPEND}"])
    assert values(out, f"customer__{SPEND}") == [1.0, 1.0, 1.0, 1.0, 1.0, None]
    aware = pd.DataFrame({"customer_id": ["1"],
                          "timestamp": pd.to_datetime([T0]).tz_convert("Asia/Tokyo")})
    assert values(get_historical_features(tmp_path, aware, [f"customer:{SPEND}"]),
                  f"customer__{SPEND}") == [1.0]


def test_no_earlier_values_unknown_entities_and_missing_views_give_nulls(tmp_path: Path) -> None:
    """Before the first row, an entity never logged, and a view with no log: all null."""
    write_log(tmp_path, registry()["customer"], [{"entity_id": "1", "ts": T0, SPEND: 5.0}])
    rows = labels(("1", T0 - SECOND), ("2", T0 + SECOND), (None, T0), ("1", None))
    out = get_historical_features(tmp_path, rows, [f"customer:{SPEND}", f"basket:{VALUE}"])
    assert values(out, f"customer__{SPEND}") == [None] * 4
    assert values(out, f"basket__{VALUE}") == [None] * 4
    nothing = get_historical_features(tmp_path / "empty", rows, [f"customer:{SPEND}"])
    assert values(nothing, f"customer__{SPEND}") == [None] * 4


def test_same_ts_highest_seq_wins_across_files(tmp_path: Path) -> None:
    """Several rows at one ts (one basket's lines in the same second): the last one counts."""
    customer = registry()["customer"]
    write_log(tmp_path, customer, [{"entity_id": "1", "ts": T0, "seq": 2, SPEND: 30.0},
                                   {"entity_id": "1", "ts": T0, "seq": 0, SPEND: 10.0}])
    write_log(tmp_path, customer, [{"entity_id": "1", "ts": T0, "seq": 1, SPEND: 20.0},
                                   {"entity_id": "1", "ts": T0 - SECOND, "seq": 9, SPEND: 1.0}],
              name="part-1.parquet")
    out = get_historical_features(tmp_path, labels(("1", T0), ("1", T0 - SECOND)),
                                  [f"customer:{SPEND}"])
    assert values(out, f"customer__{SPEND}") == [30.0, 1.0]


def test_rows_of_an_old_version_are_ignored_even_when_later(tmp_path: Path) -> None:
    """Old-definition rows (later ts, or same ts and higher seq) never reach a training set."""
    customer = registry()["customer"]
    write_log(tmp_path, customer, [
        {"entity_id": "1", "ts": T0, SPEND: 1.0},
        {"entity_id": "1", "ts": T0, "seq": 5, "version": "0ld0ld00", SPEND: 50.0},
        {"entity_id": "1", "ts": T0 + SECOND, "version": "0ld0ld00", SPEND: 60.0},
        {"entity_id": "2", "ts": T0, "version": "0ld0ld00", SPEND: 70.0},
    ])
    out = get_historical_features(tmp_path, labels(("1", T0 + 5 * SECOND), ("2", T0)),
                                  [f"customer:{SPEND}"])
    assert values(out, f"customer__{SPEND}") == [1.0, None]


def test_old_files_lacking_a_new_feature_column_are_read(tmp_path: Path) -> None:
    """A feature added by a new version is absent from older files: no error, values kept."""
    customer = registry()["customer"]
    write_log(tmp_path, customer, [{"entity_id": "1", "ts": T0, "version": "0ld0ld00"}],
              day="2011-01-03", features=(COUNT,))
    write_log(tmp_path, customer, [{"entity_id": "1", "ts": T0 + SECOND, SPEND: 3.0}])
    out = get_historical_features(tmp_path, labels(("1", T0), ("1", T0 + SECOND)),
                                  [f"customer:{SPEND}"])
    assert values(out, f"customer__{SPEND}") == [None, 3.0]
    only_old = tmp_path / "old"
    write_log(only_old, customer, [{"entity_id": "1", "ts": T0, "version": "0ld0ld00"}],
              features=(COUNT,))
    out = get_historical_features(only_old, labels(("1", T0)), [f"customer:{SPEND}"])
    assert values(out, f"customer__{SPEND}") == [None]


def test_temporary_files_are_ignored(tmp_path: Path) -> None:
    """Files starting with '.' are writes in progress (temp + rename): never read."""
    customer = registry()["customer"]
    write_log(tmp_path, customer, [{"entity_id": "1", "ts": T0, SPEND: 1.0}])
    write_log(tmp_path, customer, [{"entity_id": "1", "ts": T0, "seq": 7, SPEND: 99.0}],
              name=".part-1.parquet")
    out = get_historical_features(tmp_path, labels(("1", T0)), [f"customer:{SPEND}"])
    assert values(out, f"customer__{SPEND}") == [1.0]


def with_ttl(view: FeatureView, ttl: int | None) -> FeatureView:
    """``view`` with ``ttl_seconds`` set: the registry's own field when it has one, else a
    subclass adding it, so the TTL rule is tested before the field lands in the registry."""
    if "ttl_seconds" in {f.name for f in dataclasses.fields(FeatureView)}:
        return dataclasses.replace(view, ttl_seconds=ttl)

    @dataclasses.dataclass(frozen=True)
    class ViewWithTTL(FeatureView):
        ttl_seconds: int | None = None

    return ViewWithTTL(**{f.name: getattr(view, f.name) for f in dataclasses.fields(view)},
                       ttl_seconds=ttl)


def test_ttl_values_older_than_the_ttl_are_null(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """t - ts > ttl -> null; exactly ttl old is still served; views without TTL unaffected."""
    views = dict(registry())
    views["customer"] = with_ttl(views["customer"], 60)
    monkeypatch.setattr(historical, "registry", lambda: views)
    write_log(tmp_path, views["customer"], [{"entity_id": "1", "ts": T0, SPEND: 1.0},
                                            {"entity_id": "1", "ts": T0 + 100 * SECOND,
                                             SPEND: 2.0}])
    write_log(tmp_path, views["basket"], [{"entity_id": "1", "ts": T0, VALUE: 4.0}])
    rows = labels(*[("1", T0 + s * SECOND) for s in (0, 60, 61, 99, 100, 160, 161)])
    out = get_historical_features(tmp_path, rows, [f"customer:{SPEND}", f"basket:{VALUE}"])
    assert values(out, f"customer__{SPEND}") == [1.0, 1.0, None, None, 2.0, 2.0, None]
    assert values(out, f"basket__{VALUE}") == [4.0] * 7


def test_several_views_input_order_extra_columns_and_int_ids(tmp_path: Path) -> None:
    """Two views in one call; rows out in input order with their index and every input
    column first; features in the order asked; int ids match the log's text ids."""
    customer, basket = registry()["customer"], registry()["basket"]
    write_log(tmp_path, customer, [{"entity_id": "12346", "ts": T0, SPEND: 1.0, COUNT: 1},
                                   {"entity_id": "12347", "ts": T0, SPEND: 7.0, COUNT: 3}])
    write_log(tmp_path, basket, [{"entity_id": "12346", "ts": T0 + SECOND,
                                  INVOICE: "536365", VALUE: 15.3}], day="2011-01-05")
    rows = pd.DataFrame({"label": ["x", "y", "z", "w"],
                         "customer_id": [12347, 12346, 99999, 12346],
                         "timestamp": [T0, T0 + 2 * SECOND, T0, T0],
                         "weight": [0.5, 1.5, 2.5, 3.5]}, index=[40, 10, 30, 20])
    asked = [f"basket:{INVOICE}", f"customer:{SPEND}", f"basket:{VALUE}", f"customer:{COUNT}"]
    out = get_historical_features(tmp_path, rows, asked + [f"customer:{SPEND}"])
    assert list(out.columns) == ["label", "customer_id", "timestamp", "weight",
                                 *(a.replace(":", "__") for a in asked)]
    assert list(out.index) == [40, 10, 30, 20]
    pd.testing.assert_frame_equal(out[list(rows.columns)], rows)
    assert values(out, f"customer__{SPEND}") == [7.0, 1.0, None, 1.0]
    assert values(out, f"customer__{COUNT}") == [3, 1, None, 1]
    assert values(out, f"basket__{INVOICE}") == [None, "536365", None, None]
    assert values(out, f"basket__{VALUE}") == [None, 15.3, None, None]
    assert out[f"customer__{COUNT}"].dtype == pd.Int64Dtype()
    assert out[f"customer__{SPEND}"].dtype == "float64"
    assert pd.api.types.is_string_dtype(out[f"basket__{INVOICE}"].dtype)
    by_table = get_historical_features(tmp_path, pa.Table.from_pandas(rows, preserve_index=False),
                                       asked)
    assert values(by_table, f"customer__{SPEND}") == [7.0, 1.0, None, 1.0]


def test_whole_number_float_ids_and_a_named_id_column(tmp_path: Path) -> None:
    """Ids read as floats (an int column with gaps) and ids under another column name."""
    write_log(tmp_path, registry()["customer"], [{"entity_id": "12346", "ts": T0, SPEND: 1.0}])
    rows = pd.DataFrame({"cust": [12346.0, None], "ts": [T0, T0]})
    out = get_historical_features(tmp_path, rows, [f"customer:{SPEND}"], entity_column="cust",
                                  timestamp_column="ts")
    assert values(out, f"customer__{SPEND}") == [1.0, None]


def test_unknown_views_features_and_columns_are_clear_errors(tmp_path: Path) -> None:
    """Errors name the culprit and list what exists."""
    rows = labels(("1", T0))
    with pytest.raises(ValueError, match=r"unknown feature view 'nope'.*customer"):
        get_historical_features(tmp_path, rows, ["nope:spend"])
    with pytest.raises(ValueError, match=rf"unknown feature 'nope' of view 'customer'.*{SPEND}"):
        get_historical_features(tmp_path, rows, ["customer:nope"])
    with pytest.raises(ValueError, match="view:feature"):
        get_historical_features(tmp_path, rows, ["spend"])
    with pytest.raises(ValueError, match="'customer_id'"):
        get_historical_features(tmp_path, rows.rename(columns={"customer_id": "id"}),
                                [f"customer:{SPEND}"])
    with pytest.raises(ValueError, match="'timestamp'"):
        get_historical_features(tmp_path, rows.rename(columns={"timestamp": "t"}),
                                [f"customer:{SPEND}"])
    with pytest.raises(ValueError, match="timestamp column 'timestamp'"):
        get_historical_features(tmp_path, labels(("1", "yesterday")), [f"customer:{SPEND}"])


def reference(log: list[dict[str, Any]], version: str, entity: str | None,
              t: datetime | None) -> float | None:
    """The point-in-time rule in plain Python: the value of the current-version row of
    ``entity`` with the greatest (ts, seq) such that ts <= t; None when there is none."""
    if entity is None or t is None:
        return None
    rows = [r for r in log if r["entity_id"] == entity and r["version"] == version
            and r["ts"] <= t]
    return max(rows, key=lambda r: (r["ts"], r["seq"]))[SPEND] if rows else None


LOG_ROWS = st.dictionaries(
    keys=st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 5), st.integers(0, 3)),
    values=st.tuples(st.booleans(), st.one_of(st.none(), st.floats(-1e6, 1e6, width=32)),
                     st.integers(0, 2)),
    max_size=30)
LABEL_ROWS = st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"])),
                                st.integers(-2, 7),  # second: often exactly a row's ts
                                st.one_of(st.just(0), st.integers(0, 999))),  # + ms
                      min_size=1, max_size=20)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_rows=LOG_ROWS, label_rows=LABEL_ROWS)
def test_matches_a_plain_python_reference(log_rows: dict, label_rows: list) -> None:
    """Random small logs (current and old versions, same-ts rows, several files and days,
    null values) and random label times (ms resolution, before, between and after the
    rows): DuckDB's answer equals the reference's, row by row."""
    customer = registry()["customer"]
    log = [{"entity_id": e, "ts": T0 + s * SECOND, "seq": q,
            "version": customer.version if current else "0ld0ld00", SPEND: v, "file": f}
           for (e, s, q), (current, v, f) in log_rows.items()]
    with tempfile.TemporaryDirectory() as tmp:
        for f in {r["file"] for r in log}:
            write_log(Path(tmp), customer,
                      [{k: v for k, v in r.items() if k != "file"} for r in log if r["file"] == f],
                      day=f"2011-01-0{4 + f % 2}", name=f"part-{f}.parquet")
        times = [T0 + timedelta(seconds=sec, milliseconds=ms) for _, sec, ms in label_rows]
        rows = labels(*[(e, t) for (e, _, _), t in zip(label_rows, times)])
        out = get_historical_features(Path(tmp), rows, [f"customer:{SPEND}"])
    expected = [reference(log, customer.version, e, t)
                for (e, _, _), t in zip(label_rows, times)]
    got = values(out, f"customer__{SPEND}")
    assert len(got) == len(expected)
    for g, x in zip(got, expected):
        assert (g is None and x is None) or (g is not None and x is not None
                                             and math.isclose(g, x, rel_tol=0, abs_tol=0))


@pytest.mark.parametrize("suffix_in,suffix_out", [(".csv", ".csv"), (".parquet", ".parquet"),
                                                  (".csv", ".parquet"), (".parquet", ".csv.gz")])
def test_historical_to_file_csv_and_parquet(tmp_path: Path, suffix_in: str,
                                            suffix_out: str) -> None:
    """Files in, file out, by extension; ids stay as written; the row count is returned."""
    write_log(tmp_path, registry()["customer"], [{"entity_id": "12346", "ts": T0, SPEND: 1.5,
                                                  COUNT: 2}])
    rows = pd.DataFrame({"customer_id": [12346, 12347, 12346],
                         "timestamp": ["2011-01-04T10:00:00", "2011-01-04T10:00:00",
                                       "2011-01-04T09:59:59"],
                         "label": [1, 0, 1]})
    entities = tmp_path / f"labels{suffix_in}"
    if suffix_in == ".csv":
        rows.to_csv(entities, index=False)
    else:
        rows.to_parquet(entities, index=False)
    out_path = tmp_path / "out" / f"training{suffix_out}"
    n = historical_to_file(tmp_path, entities, [f"customer:{SPEND}", f"customer:{COUNT}"],
                           out_path)
    assert n == 3
    out = pd.read_csv(out_path) if ".csv" in suffix_out else pd.read_parquet(out_path)
    assert list(out.columns) == ["customer_id", "timestamp", "label", f"customer__{SPEND}",
                                 f"customer__{COUNT}"]
    assert [str(v) for v in out["customer_id"]] == ["12346", "12347", "12346"]
    assert values(out, f"customer__{SPEND}") == [1.5, None, None]
    assert values(out, f"customer__{COUNT}") == [2, None, None]
    assert list(out["label"]) == [1, 0, 1]
    assert not [p for p in out_path.parent.iterdir() if p.name.startswith(".")]


def test_historical_to_file_errors(tmp_path: Path) -> None:
    """A missing id or timestamp column, an unknown feature, a bad extension: ValueError."""
    entities = tmp_path / "labels.csv"
    pd.DataFrame({"customer": [1], "timestamp": ["2011-01-04"]}).to_csv(entities, index=False)
    with pytest.raises(ValueError, match=r"lacks column\(s\) 'customer_id'.*customer, timestamp"):
        historical_to_file(tmp_path, entities, [f"customer:{SPEND}"], tmp_path / "o.csv")
    no_time = tmp_path / "no_time.csv"
    pd.DataFrame({"customer_id": [1], "when": ["2011-01-04"]}).to_csv(no_time, index=False)
    with pytest.raises(ValueError, match=r"lacks column\(s\) 'timestamp'"):
        historical_to_file(tmp_path, no_time, [f"customer:{SPEND}"], tmp_path / "o.csv")
    with pytest.raises(ValueError, match="unknown feature 'nope'"):
        historical_to_file(tmp_path, entities, ["customer:nope"], tmp_path / "o.csv",
                           entity_column="customer")
    with pytest.raises(ValueError, match=r"\.csv, \.csv\.gz or \.parquet"):
        historical_to_file(tmp_path, entities, [f"customer:{SPEND}"], tmp_path / "o.xlsx",
                           entity_column="customer")
    with pytest.raises(ValueError, match="does not exist"):
        historical_to_file(tmp_path, tmp_path / "absent.csv", [f"customer:{SPEND}"],
                           tmp_path / "o.csv")
