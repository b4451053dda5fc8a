"""Point-in-time training sets: each label row joined to the feature values it could have seen.

The point-in-time rule (DESIGN.md, "Point in time"), exactly: for a label row of entity
``e`` at time ``t`` and a feature view ``V``, the values are those of the feature-log row
of ``V`` for ``e`` with the greatest ``(ts, seq)`` among the rows with

- ``ts <= t`` (a row exactly at ``t`` counts; a row one second later never does: a log row
  at ``ts`` holds every event with event time ``<= ts``, so nothing after ``t`` leaks in),
- ``version`` equal to ``V``'s current version (values of an older definition are never
  mixed in, even when they are later),

and they are all null when there is no such row, or when ``V`` has a TTL and the row is
stale: ``t - ts > ttl_seconds`` (a value exactly ``ttl_seconds`` old is still served).

A request-time feature (``days_since_last_purchase``, see
:mod:`basketflow.schemas.features`) is not in the log: it is computed from that row's
value of its source and the label's time (to the whole second, as event times are) as
the as-of time, by the registry's :func:`~basketflow.schemas.features.days_since`, the
function online reads use (:func:`days_since_column` applies it to whole columns).

The feature log read here is each view's finished files as the offline store lists them
(:func:`basketflow.sinks.offline_layout.feature_log_files`), with columns ``entity_id``
(string), ``ts`` (timestamp, UTC), ``seq`` (int64: later supersedes earlier at the same
``ts``), ``version`` (string) and one column per stored feature of the view.

How: DuckDB reads each asked view's log (only the columns asked for, only rows of the
current version) into Arrow; entity ids become small integer codes; DuckDB collapses each
``(entity, ts)`` to its highest ``seq`` (ASOF alone would pick any of several rows with the
same ``ts``) and runs one ``ASOF LEFT JOIN`` per view on those narrow tables, giving each
label row the index of its log row; Arrow ``take`` gathers the values. No Python loop
touches a row (``benchmarks/historical.py`` times it).

>>> import tempfile, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
>>> from basketflow.schemas.features import registry
>>> from basketflow.sinks.offline_layout import feature_log_dir, partition_name
>>> view = registry()["customer"]
>>> spend = next(f.name for f in view.features if f.dtype == "float")  # customer:spend
>>> values = {f.name: pa.array([None, None], ARROW_TYPES[f.dtype])
...           for f in view.stored_features}
>>> values[spend] = pa.array([10.0, 99.0])                  # at 10:00:00 and 10:00:01
>>> log = pa.table({"entity_id": ["17850", "17850"],
...                 "ts": pa.array([1_291_629_600, 1_291_629_601], pa.timestamp("s", tz="UTC")),
...                 "seq": [0, 0], "version": [view.version] * 2, **values})
>>> root = Path(tempfile.mkdtemp())
>>> day = feature_log_dir(root, "customer") / partition_name("2010-12-06")
>>> day.mkdir(parents=True)
>>> pq.write_table(log, day / "part-0.parquet")
>>> labels = pd.DataFrame({"customer_id": [17850, 17850, 12346],
...                        "timestamp": ["2010-12-06T10:00:00", "2010-12-06T10:00:01Z",
...                                      "2010-12-06T10:00:00"]})
>>> training = get_historical_features(root, labels, [f"customer:{spend}"])
>>> training[f"customer__{spend}"].tolist()
[10.0, 99.0, nan]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from basketflow.offline_uri import StoreDir, StorePath
from basketflow.reports.offline_query import arrow_table
from basketflow.reports.past_clock import moves_on, windows_at
from basketflow.reports.tile_log import is_tiled, tiled_values
from basketflow.schemas.declare import View
from basketflow.schemas.features import DAY_SECONDS, FeatureView, days_since, registry
from basketflow.sinks.offline_layout import feature_log_files
from basketflow.sinks.offline_scan import parquet_source
from basketflow.sinks.offline_store import ARROW_TYPES, ensure_readable

LOG_KEY_COLUMNS = ("entity_id", "ts", "seq", "version")
ROW = "__row"  # input row number, carried through the join to restore input order
KEY_TS = "__ts"  # input timestamp, UTC

#: A feature's dtype -> the DuckDB type its column is read as (the Arrow type of its
#: feature-log column is the offline store's :data:`ARROW_TYPES`).
DUCKDB_TYPES: dict[str, str] = {"int": "BIGINT", "float": "DOUBLE", "str": "VARCHAR",
                                "epoch_s": "BIGINT"}


@dataclass(frozen=True)
class ViewRequest:
    """The features asked of one view, the input column holding its entity ids, and the
    view's declaration when the generic engine computes it (its values after the clock
    are then computed: :mod:`basketflow.reports.past_clock`)."""

    view: FeatureView
    features: tuple[str, ...]
    id_column: str
    declaration: View | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The log columns the asked features need: each asked stored feature, and the
        source of each asked request-time feature."""
        sources = {f.name: f.source for f in self.view.request_time_features}
        return tuple(dict.fromkeys(sources.get(f, f) for f in self.features))

    @property
    def ttl_seconds(self) -> int | None:
        """The view's TTL in seconds, or None (no TTL, or the registry has no TTLs yet)."""
        ttl = getattr(self.view, "ttl_seconds", None)
        if ttl is not None and (not isinstance(ttl, int) or ttl < 0):
            raise ValueError(f"view {self.view.name!r}: ttl_seconds must be an int >= 0 "
                             f"or None, not {ttl!r}")
        return ttl


def output_column(view: str, feature: str) -> str:
    """Name of a feature's column in a training set: ``<view>__<feature>``."""
    return f"{view}__{feature}"


def parse_features(features: Sequence[str],
                   views: Mapping[str, FeatureView] | None = None) -> list[tuple[str, str]]:
    """``["view:feature", ...]`` -> [(view, feature), ...], in asked order, deduplicated.

    Raises ValueError naming an unknown view or feature and listing what exists, so a typo
    on the command line is answered with the right spelling.
    """
    views = registry() if views is None else views
    if isinstance(features, str):
        features = [features]
    if not features:
        raise ValueError("no features asked for: give at least one 'view:feature'")
    wanted: dict[tuple[str, str], None] = {}
    for spec in features:
        name, sep, feature = spec.strip().partition(":")
        if not sep or not name or not feature:
            raise ValueError(f"feature {spec!r} is not of the form 'view:feature' "
                             f"(for example 'customer:spend')")
        if name not in views:
            raise ValueError(f"unknown feature view {name!r} in {spec!r}; "
                             f"views: {', '.join(sorted(views))}")
        view = views[name]
        if feature not in view.feature_names:
            raise ValueError(f"unknown feature {feature!r} of view {name!r}; {name} has: "
                             f"{', '.join(view.feature_names)}")
        wanted[(name, feature)] = None
    return list(wanted)


def _by_view(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """[(view, feature), ...] -> {view: [feature, ...]}, views in first-asked order."""
    grouped: dict[str, list[str]] = {}
    for view, feature in pairs:
        grouped.setdefault(view, []).append(feature)
    return grouped


def entity_ids(values: pd.Series, column: str) -> pa.Array:
    """An input id column as strings, the type of ``entity_id`` in the feature log.

    Integer ids (a user's CSV) become their decimal text; float ids that are whole numbers
    (what pandas makes of an integer column with gaps, 12346.0) are taken as integers.
    """
    try:
        ids = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python objects
        ids = pa.array([None if pd.isna(v) else str(v) for v in values], pa.string())
    if pa.types.is_floating(ids.type):
        try:
            ids = pc.cast(ids, pa.int64())
        except pa.ArrowInvalid as exc:
            raise ValueError(f"entity id column {column!r} holds non-integer numbers") from exc
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        ids = pc.cast(ids, pa.string())
    return ids


def timestamps(values: pd.Series, column: str) -> pa.Array:
    """An input timestamp column as UTC microseconds; naive times and strings are UTC.

    Accepts datetimes (naive or with a zone) and ISO 8601 strings (with or without an
    offset). Sub-microsecond digits are cut, which never moves a time across a whole
    second, so it cannot change which log row (whole seconds) is at or before it.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = pd.to_datetime(values, utc=True)
    elif pd.api.types.is_numeric_dtype(values.dtype) and not values.isna().all():
        raise ValueError(f"timestamp column {column!r} holds numbers ({values.dtype}); "
                         f"give datetimes or ISO 8601 strings")
    else:
        try:
            stamps = pd.to_datetime(values, utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"timestamp column {column!r}: not ISO 8601 "
                             f"timestamps ({exc})") from exc
    return pc.cast(pa.array(stamps, from_pandas=True), pa.timestamp("us", tz="UTC"),
                   safe=False)


def _key_table(entities: pd.DataFrame, requests: Sequence[ViewRequest],
               timestamp_column: str) -> tuple[pa.Table, dict[str, pa.Array]]:
    """The label side of the join: row number and timestamp; and the ids by input column.

    Raises ValueError naming a missing id or timestamp column.
    """
    missing = [c for c in dict.fromkeys([*(r.id_column for r in requests), timestamp_column])
               if c not in entities.columns]
    if missing:
        raise ValueError(f"the entity rows lack column(s) {', '.join(map(repr, missing))}; "
                         f"they have: {', '.join(map(str, entities.columns))}")
    keys = pa.table({ROW: pa.array(np.arange(len(entities), dtype=np.int64)),
                     KEY_TS: timestamps(entities[timestamp_column], timestamp_column)})
    ids = {c: entity_ids(entities[c], c) for c in dict.fromkeys(r.id_column for r in requests)}
    return keys, ids


def _quote(identifier: str) -> str:
    """A SQL identifier, double-quoted."""
    return '"' + identifier.replace('"', '""') + '"'


def _log_schema(request: ViewRequest) -> pa.Schema:
    """The Arrow schema of a view's log rows as read here: keys, then the columns the
    asked features need."""
    types = {f.name: ARROW_TYPES[f.dtype] for f in request.view.stored_features}
    return pa.schema([("entity_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
                      ("seq", pa.int64()), *((f, types[f]) for f in request.columns)])


def _file_columns(con: duckdb.DuckDBPyConnection, files: Sequence[StoreDir]) -> tuple[set[str], bool]:
    """The columns of a set of Parquet files (union) and whether every file has the same.

    Read from the footers only. Files that differ (a view whose definition changed) are
    then read matching columns by name, which costs a second pass over the footers.
    """
    signatures: dict[str, set[tuple[str, str, str]]] = {}
    for name, column, kind, logical in con.execute(
            "SELECT file_name, name, type, CAST(logical_type AS VARCHAR) "
            "FROM parquet_schema($1) WHERE coalesce(num_children, 0) = 0",
            [[str(p) for p in files]]).fetchall():
        signatures.setdefault(name, set()).add((column, kind or "", logical or ""))
    distinct = {frozenset(sig) for sig in signatures.values()}
    return {column for sig in distinct for column, _, _ in sig}, len(distinct) <= 1


def _local_file_columns(con: duckdb.DuckDBPyConnection,
                        files: Sequence[Path]) -> tuple[set[str], bool]:
    """:func:`_file_columns` of a local store's files, their footers kept for the scan
    that follows (DuckDB's metadata cache: the files are written once, never changed in
    place), so each footer is read once per query, not once per pass. That pass opens
    every file, so a damaged one fails it: it is then named (``CorruptFile``, from
    ``ensure_readable``); no separate pass checks the files first."""
    con.execute("SET parquet_metadata_cache = true")
    try:
        return _file_columns(con, files)
    except duckdb.Error:
        ensure_readable(files)
        raise


def read_view_log(con: duckdb.DuckDBPyConnection, request: ViewRequest,
                  files: Sequence[StoreDir]) -> pa.Table:
    """A view's log rows of its current version: entity_id, ts, seq and the columns the
    asked features need (:attr:`ViewRequest.columns`).

    Only those columns are read, and only rows whose ``version`` is the view's current one.
    Files are matched by column name, so older files lacking a newer feature are read (the
    feature is null there); a feature absent from every file is a null column. No files:
    an empty table of the same schema. A file that cannot be opened as Parquet raises
    :class:`~basketflow.sinks.offline_layout.CorruptFile` naming it.
    """
    schema = _log_schema(request)
    if not files:
        return schema.empty_table()
    if isinstance(files[0], StorePath):  # read by Arrow, columns matched by name
        ensure_readable(files)
        source = parquet_source(con, files, union_by_name=True,
                                columns=[*LOG_KEY_COLUMNS, *request.columns])
        present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source.sql}")
                   .fetchall()}
    else:
        present, uniform = _local_file_columns(con, files)
        # The files and the version are parameters, never SQL text (a quote in a path).
        source = parquet_source(con, files, union_by_name=not uniform)
    lacking = [c for c in LOG_KEY_COLUMNS if c not in present]
    if lacking:
        raise ValueError(f"feature log of view {request.view.name!r} lacks column(s) "
                         f"{', '.join(lacking)}: not a feature log ({files[0].parent.parent})")
    typed = {f.name: DUCKDB_TYPES[f.dtype] for f in request.view.stored_features}
    columns = ", ".join(
        f"CAST({_quote(f)} AS {typed[f]}) AS {_quote(f)}" if f in present
        else f"NULL::{typed[f]} AS {_quote(f)}" for f in request.columns)
    table = arrow_table(con, f"SELECT CAST(entity_id AS VARCHAR) AS entity_id, "
                        f"CAST(ts AS TIMESTAMPTZ) AS ts, CAST(seq AS BIGINT) AS seq, {columns} "
                        f"FROM {source.sql} WHERE version = $version",
                        {**source.params, "version": request.view.version})
    return table.cast(schema)


def _view_log(con: duckdb.DuckDBPyConnection, request: ViewRequest, files: Sequence[StoreDir],
              entities: pa.Array, times: pa.Array) -> pa.Table:
    """A view's log rows as the join takes them: read, or for a view that logs tiles, its
    values at the last hour end before each asked (entity, time), summed from the tiles
    (:mod:`basketflow.reports.tile_log`): the values in effect at that time, since they
    change only at hour ends."""
    if not is_tiled(request.view):
        return read_view_log(con, request, files)
    if not files:
        return _log_schema(request).empty_table()
    ensure_readable(files)
    seconds = pc.divide(pc.cast(times, pa.int64()), 1_000_000)  # floor: times are >= 1970
    hours = pc.subtract(pc.divide(pc.add(seconds, 1), 3600), 1)
    asked = pa.table({"entity_id": entities, "hour": hours}).filter(
        pc.is_valid(entities))
    return tiled_values(con, request.view, files, asked, request.columns).cast(
        _log_schema(request))


def _encode(ids: pa.Array, log_ids: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Small integer codes for entity ids, the same for the labels and the log.

    The ASOF join partitions and compares on the entity: on int32 codes it runs faster
    than on text. Label ids absent from the log get null: they match nothing.
    """
    known = pc.unique(log_ids)
    return pc.index_in(ids, value_set=known), pc.index_in(log_ids, value_set=known)


def _asof_sql(requests: Sequence[ViewRequest], key_of: Sequence[str]) -> str:
    """The point-in-time query: for every label row, per view, the index of its log row.

    Per view ``i`` the narrow log ``n<i>`` (code, ts, seq, __i) is first collapsed to one
    row per (code, ts), the one with the highest seq (ASOF would pick any of several rows
    with the same ts); then ``ASOF LEFT JOIN`` takes, for the label's entity, the row with
    the greatest ts <= the label's time. With a TTL, a row with ts < time - ttl is null.
    """
    ctes, joins, picks = [], [], []
    for i, request in enumerate(requests):
        ctes.append(f"v{i} AS (SELECT code, ts, arg_max(__i, seq) AS __i FROM n{i} "
                    f"GROUP BY code, ts)")
        joins.append(f"ASOF LEFT JOIN v{i} ON k.{key_of[i]} = v{i}.code "
                     f"AND k.{KEY_TS} >= v{i}.ts")
        pick = f"v{i}.__i"
        if request.ttl_seconds is not None:  # stale: time - ts > ttl
            pick = (f"CASE WHEN v{i}.ts >= k.{KEY_TS} - to_seconds({request.ttl_seconds}) "
                    f"THEN {pick} END")
        picks.append(f"{pick} AS i{i}")
    return (f"WITH {', '.join(ctes)} SELECT k.{ROW}, {', '.join(picks)} "
            f"FROM keys k {' '.join(joins)}")


def _in_input_order(rows: np.ndarray, found: pa.ChunkedArray, n: int) -> pa.Array:
    """Per input row, the log-row index found for it (null: none), from unordered results."""
    index = np.empty(n, np.int64)
    index[rows] = pc.fill_null(found, -1).to_numpy()
    return pa.array(index, mask=index < 0)


def point_in_time(con: duckdb.DuckDBPyConnection, keys: pa.Table, ids: Mapping[str, pa.Array],
                  requests: Sequence[ViewRequest], logs: Sequence[pa.Table],
                  root: StoreDir) -> pa.Table:
    """Every asked feature, for every label row in input order, by the point-in-time rule
    (windowed values after the log's clock moved on from the events of the store at
    ``root``: :func:`_moved_on`).

    DuckDB's ASOF join runs on narrow tables (entity code, ts, seq, row index) and yields,
    per view and label row, the index of the log row to use; Arrow ``take`` then gathers
    the feature values, rather than carrying every value column through the joins.
    """
    key_of: list[str] = []
    columns: dict[str, pa.ChunkedArray] = {}
    for i, (request, log) in enumerate(zip(requests, logs)):
        key_codes, log_codes = _encode(ids[request.id_column], log.column("entity_id"))
        keys = keys.append_column(f"c{i}", key_codes)
        key_of.append(f"c{i}")
        con.register(f"n{i}", pa.table({
            "code": log_codes, "ts": log.column("ts"), "seq": log.column("seq"),
            "__i": pa.array(np.arange(log.num_rows, dtype=np.int64))}))
    con.register("keys", keys)
    found = arrow_table(con, _asof_sql(requests, key_of))
    rows = found.column(ROW).to_numpy()
    as_of = _whole_seconds(keys.column(KEY_TS))
    for i, (request, log) in enumerate(zip(requests, logs)):
        index = _in_input_order(rows, found.column(f"i{i}"), keys.num_rows)
        values = _moved_on(con, root, request, log, index, ids[request.id_column], as_of)
        at_read = {f.name: f.source for f in request.view.request_time_features}
        for feature in request.features:
            columns[output_column(request.view.name, feature)] = (
                days_since_column(as_of, values.column(at_read[feature]))
                if feature in at_read else values.column(feature))
    return pa.table(columns)


def _moved_on(con: duckdb.DuckDBPyConnection, root: StoreDir, request: ViewRequest,
              log: pa.Table, index: pa.Array, ids: pa.Array, as_of: np.ndarray) -> pa.Table:
    """The asked columns of the log rows at ``index`` (one per label row), with the
    windowed values of the label rows after the log's clock (its newest ``ts``) computed
    at their times (:mod:`basketflow.reports.past_clock`): the log holds every change up
    to the clock, none after it."""
    values = log.select(list(request.columns)).take(index)
    moving = moves_on(request.view, request.columns, request.declaration)
    if moving is None or log.num_rows == 0:
        return values
    clock = int(pc.max(log.column("ts")).cast(pa.int64()).as_py()) // 1_000_000
    past = index.is_valid().to_numpy(zero_copy_only=False) & (as_of > clock)
    rows = np.flatnonzero(past)
    if not len(rows):
        return values
    moved = windows_at(con, root, moving, ids.take(pa.array(rows)), as_of[rows], clock)
    if moved is None:  # no events log: the values as of the clock
        return values
    mask = pa.array(past)
    for feature in moving.features:
        column = values.column(feature).combine_chunks()
        values = values.set_column(values.schema.get_field_index(feature), feature,
                                   pc.replace_with_mask(column, mask,
                                                        moved[feature].cast(column.type)))
    return values


def _whole_seconds(times: pa.ChunkedArray) -> np.ndarray:
    """UTC timestamps as epoch seconds, floored to the whole second (null: 0)."""
    micros = pc.fill_null(times.cast(pa.int64()), 0).to_numpy()
    return micros // 1_000_000


def days_since_column(as_of: np.ndarray, ts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """:func:`~basketflow.schemas.features.days_since` row by row, in NumPy, with the
    same results: ``as_of`` and ``ts`` in epoch seconds (null ``ts``: null).

    The days are the same float64 as Python's ``(as_of - ts) / 86400`` (IEEE division of
    the same whole numbers, exact below 2**53). Rounding them to 4 decimals as
    ``np.rint(days * 1e4) / 1e4`` gives Python's ``round(days, 4)`` except where the
    exact value lies half-way between two results: ``days * 1e4`` is then within a few
    units in the last place of a half, where a whole number of seconds is otherwise at
    least 1/216 away from one. Those rows (1 in 216) are rounded by ``days_since``.

    >>> days_since_column(np.array([86_400, 86_508, 7]), pa.array([0, 0, None])).to_pylist()
    [1.0, 1.0012, None]
    """
    ts = pa.chunked_array([ts]) if isinstance(ts, pa.Array) else ts
    missing = ts.is_null().to_numpy(zero_copy_only=False)
    since = pc.fill_null(ts, 0).to_numpy().astype(np.int64)
    days = (as_of - since) / DAY_SECONDS
    scaled = days * 1e4
    out = np.rint(scaled) / 1e4
    for i in np.flatnonzero((np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6) & ~missing):
        out[i] = days_since(int(as_of[i]), int(since[i]))
    return pa.array(out, mask=missing)


def _requests(wanted: Mapping[str, list[str]], entity_column: str | Mapping[str, str] | None,
              views: Mapping[str, FeatureView],
              declarations: Mapping[str, View] | None = None) -> list[ViewRequest]:
    """One ViewRequest per asked view, with the input column of its entity ids and its
    declaration (of ``declarations``, by name) if any.

    ``entity_column``: None -> each view's entity name (``customer_id``); a string -> that
    column for every view; a mapping -> entity name -> column (others default to the name).
    """
    requests = []
    for name, features in wanted.items():
        view = views[name]
        if entity_column is None:
            column = view.entity
        elif isinstance(entity_column, str):
            column = entity_column
        else:
            column = entity_column.get(view.entity, view.entity)
        requests.append(ViewRequest(view, tuple(features), column,
                                    (declarations or {}).get(name)))
    return requests


def get_historical_features(offline_dir: StoreDir, entities: pd.DataFrame | pa.Table,
                            features: Sequence[str], *,
                            entity_column: str | Mapping[str, str] | None = None,
                            timestamp_column: str = "timestamp",
                            views: Mapping[str, FeatureView] | None = None,
                            declarations: Mapping[str, View] | None = None) -> pd.DataFrame:
    """A training set: every entity row with its features as they were at its timestamp.

    ``entities`` holds an entity id column (default: each view's entity name, for example
    ``customer_id``; ints are fine, they are compared as text) and ``timestamp_column``
    (datetimes, naive = UTC, or ISO 8601 strings). ``features`` are ``"view:feature"``.

    Returns the input rows in input order (same index), every input column first, then one
    column ``<view>__<feature>`` per asked feature, in the order asked: int and epoch_s
    features as nullable ``Int64``, floats as ``float64`` (NaN = null), strings as text.
    Values follow the point-in-time rule of the module docstring; a view with no log yet
    gives nulls. Raises ValueError for an unknown view or feature, a missing column, or an
    output column that would overwrite an input column. ``views``: the views by name
    (default: the built-in ones; a feature repository's own views too when given);
    ``declarations``: the repository's own views' declarations by name, with which their
    windowed values after the log's clock are computed at the label's time (without
    them, those values stay as of the clock).
    """
    views = registry() if views is None else views
    order = parse_features(features, views)
    frame = entities.to_pandas() if isinstance(entities, pa.Table) else entities
    requests = _requests(_by_view(order), entity_column, views, declarations)
    clash = [output_column(*vf) for vf in order if output_column(*vf) in frame.columns]
    if clash:
        raise ValueError(f"the entity rows already have column(s) {', '.join(clash)}")
    keys, ids = _key_table(frame, requests, timestamp_column)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")  # naive log timestamps are UTC, as everywhere
        logs = [_view_log(con, r, feature_log_files(offline_dir, r.view.name),
                          ids[r.id_column], keys.column(KEY_TS)) for r in requests]
        found = point_in_time(con, keys, ids, requests, logs, offline_dir)
    found = found.select([output_column(*vf) for vf in order])
    values = found.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    values.index = frame.index
    return pd.concat([frame, values], axis=1)


def _format(path: Path) -> str:
    """'csv' or 'parquet', by the file name's extension."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"{path}: give a .csv, .csv.gz or .parquet file")


def read_entities(path: Path, id_columns: Sequence[str] = ()) -> pa.Table:
    """An entity file (CSV or Parquet) as an Arrow table; CSV id columns are read as text.

    Reading ids as text keeps them exactly as written (no ``12346.0``, no lost zeros).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"entity file {path} does not exist")
    kind = _format(path)
    try:
        if kind == "parquet":
            return pq.read_table(path)
        with pacsv.open_csv(path) as reader:  # reads only the first block, for the header
            header = reader.schema.names
        types = {c: pa.string() for c in id_columns if c in header}
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"entity file {path} is not a readable {kind.upper()} file "
                         f"({_first_clause(exc)}): give one with the entity id column "
                         "and `timestamp`") from exc


def _first_clause(exc: BaseException) -> str:
    """An error's message up to its second colon, printable characters only: what went
    wrong, without the bytes of the file that made it go wrong.

    >>> _first_clause(ValueError("CSV parse error: Expected 1 columns, got 2: \x7fELF..."))
    'CSV parse error: Expected 1 columns, got 2'
    """
    text = ":".join(str(exc).split(":")[:2]).split(". ")[0].strip()
    return "".join(c for c in text if c.isprintable())[:160] or type(exc).__name__


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Write a training set as CSV or Parquet, by extension, atomically (temp + rename)."""
    path = Path(path)
    kind = _format(path)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if kind == "parquet":
        pq.write_table(table, tmp)
    else:
        with pa.CompressedOutputStream(str(tmp), "gzip") if path.name.lower().endswith(".gz") \
                else pa.OSFile(str(tmp), "wb") as sink:
            pacsv.write_csv(table, sink)
    tmp.replace(path)


def historical_to_file(offline_dir: StoreDir, entities_path: Path, features: Sequence[str],
                       out_path: Path, entity_column: str | None = None,
                       timestamp_column: str = "timestamp",
                       views: Mapping[str, FeatureView] | None = None,
                       declarations: Mapping[str, View] | None = None) -> int:
    """``basketflow historical``: read an entity file, write its training set; return rows.

    CSV or Parquet in and out, chosen by extension. Raises ValueError with a clear message
    for a missing entity id or timestamp column, an unknown feature, or a bad file name.
    ``views``: the views by name (default: the built-in ones); ``declarations``: the
    repository's own views' declarations (:func:`get_historical_features`).
    """
    views = registry() if views is None else views
    wanted = _by_view(parse_features(features, views))
    ids = [r.id_column for r in _requests(wanted, entity_column, views)]
    table = read_entities(Path(entities_path), ids)
    missing = [c for c in dict.fromkeys([*ids, timestamp_column]) if c not in table.column_names]
    if missing:
        raise ValueError(f"entity file {entities_path} lacks column(s) "
                         f"{', '.join(map(repr, missing))}; it has: "
                         f"{', '.join(table.column_names)}")
    frame = get_historical_features(offline_dir, table, features, entity_column=entity_column,
                                    timestamp_column=timestamp_column, views=views,
                                    declarations=declarations)
    write_frame(frame, Path(out_path))
    return len(frame)
