"""Series summaries: the stored multi-resolution buckets of each run's series.

``refresh`` runs in the ingesting transaction after the points are written, under the run's
ingest lock (``lock_run_points`` in ``backend/storage/metrics.py``; on SQLite the database's write
lock), so two writers of one run refresh one after the other and each sees the other's
committed points and rows. It touches only the buckets the
batch touched, at every level, in one of two ways:

- a batch that only added points (none replaced a stored value) is summarised from its own
  values at every level, and each of those rows is merged with its bucket's stored row, if any:
  on PostgreSQL by one ``INSERT … ON CONFLICT DO UPDATE`` whose update is the merge, on SQLite
  by reading the touched buckets' rows and writing the merged ones back. No point is read back
  and no finer level is re-read;
- a batch that replaced a point recomputes the touched buckets exactly: the finest level from
  the points of those buckets, each coarser level from the rows of the level below.

Both give the same rows (the mean up to rounding). ``rebuild`` recomputes a whole run from its
points, a window at a time, for points loaded around the API. Every statement filters by
``run_id``. See ``backend/series_summary.py`` for what a bucket holds and docs/ARCHITECTURE.md,
"Summaries", for how the comparison reads them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import fields

import numpy as np
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from backend.db import driver_connection
from backend.models import MetricPointRow, MetricSummaryRow
from backend.series_summary import LEVELS, NO_STEP, BucketStats, merge_buckets, point_buckets

__all__ = ["SummaryStore"]

_STAT_FIELDS = [f.name for f in fields(BucketStats) if f.name != "bucket"]
_STEP_FIELDS = {"min_step", "max_step", "nan_step"}
_INT_FIELDS = {"first_step", "last_step", "count", "finite_count", *_STEP_FIELDS}

# How each column travels packed from PostgreSQL: its send function, NULL replaced by NaN or
# NO_STEP so every value has the same width, and its wire type.
_WIRE = {
    name: ">i4" if name in ("count", "finite_count") else ">i8" if name in _INT_FIELDS else ">f8"
    for name in _STAT_FIELDS
} | {"bucket": ">i8"}
_SEND = {name: {">i4": "int4send", ">i8": "int8send", ">f8": "float8send"}[w] for name, w in _WIRE.items()}
_MISSING = {
    name: str(NO_STEP) if name in _STEP_FIELDS else "0" if name in _INT_FIELDS or name == "bucket"
    else "'NaN'::float8"
    for name in _WIRE
}


def _spans(keys: np.ndarray, buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique sorted (key, bucket) pairs as runs of consecutive buckets: (key, first, last)."""
    if keys.size == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    order = np.lexsort((buckets, keys))
    keys, buckets = keys[order], buckets[order]
    new = np.ones(keys.size, dtype=bool)
    new[1:] = (keys[1:] != keys[:-1]) | (buckets[1:] > buckets[:-1] + 1)
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], keys.size) - 1
    return keys[starts], buckets[starts], buckets[ends]


def _groups(keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Group numbers, changing wherever the key or the id changes (rows sorted by both)."""
    change = np.ones(keys.size, dtype=np.int64)
    if keys.size:
        change[1:] = (keys[1:] != keys[:-1]) | (ids[1:] != ids[:-1])
    return np.cumsum(change)


class SummaryStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _postgresql(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    # -- maintenance --------------------------------------------------------------------------

    def refresh(
        self,
        run_id: int,
        key_ids: np.ndarray,
        steps: np.ndarray,
        values: np.ndarray | None = None,
        *,
        appended: bool = False,
    ) -> None:
        """Bring up to date every bucket, at every level, that holds one of the written points.

        ``key_ids``, ``steps`` and ``values`` are the written points' (any order, one point per
        key and step); the points themselves must already be in ``metric_point``. ``appended``
        says that none of them replaced a stored point: the batch's own statistics are then
        merged into the stored rows. Otherwise (or without ``values``) the touched buckets are
        recomputed from the stored points.
        """
        key_ids = np.asarray(key_ids, dtype=np.int64)
        steps = np.asarray(steps, dtype=np.int64)
        if steps.size == 0:
            return
        if appended and values is not None:
            self._merge_appended(run_id, key_ids, steps, np.asarray(values, dtype=np.float64))
            return
        finest = LEVELS[0]
        span_keys, first, last = _spans(key_ids, steps >> finest)
        keys, rows = _finest_rows(
            *self._read_points(run_id, span_keys, first << finest, ((last + 1) << finest) - 1)
        )
        written: list[tuple[int, np.ndarray, BucketStats]] = [(finest, keys, rows)]
        # Every level's rows below the touched buckets in one statement: the spans depend only
        # on the written steps.
        spans = []
        for finer, level in zip(LEVELS, LEVELS[1:], strict=False):
            span_keys, first, last = _spans(key_ids, steps >> level)
            shift = level - finer
            spans.append((np.full(span_keys.size, finer), span_keys, first << shift, ((last + 1) << shift) - 1))
        all_levels, all_keys, all_rows = self._read_summaries(
            run_id, *(np.concatenate(parts) for parts in zip(*spans, strict=True))
        )
        for finer, level in zip(LEVELS, LEVELS[1:], strict=False):
            shift = level - finer
            mine = all_levels == finer
            old_keys, old_rows = all_keys[mine], all_rows.take(mine)
            fresh = set(zip(keys.tolist(), rows.bucket.tolist(), strict=True))
            stale = np.fromiter(
                ((k, b) in fresh for k, b in zip(old_keys.tolist(), old_rows.bucket.tolist(), strict=True)),
                dtype=bool,
                count=old_keys.size,
            )
            both_keys = np.concatenate([old_keys[~stale], keys])
            both = BucketStats.concat([old_rows.take(~stale), rows])
            order = np.lexsort((both.bucket, both_keys))
            keys, rows = _merge_up(both_keys[order], both.take(order), shift)
            written.append((level, keys, rows))
        self._write(run_id, written)

    def _merge_appended(self, run_id: int, key_ids: np.ndarray, steps: np.ndarray, values: np.ndarray) -> None:
        """Summaries after adding points none of which was stored: the batch's rows at every
        level, each merged with the stored row of its bucket when there is one."""
        if key_ids.size > 1 and np.any(
            (key_ids[1:] < key_ids[:-1]) | ((key_ids[1:] == key_ids[:-1]) & (steps[1:] <= steps[:-1]))
        ):
            order = np.lexsort((steps, key_ids))
            key_ids, steps, values = key_ids[order], steps[order], values[order]
        keys, rows = _finest_rows(key_ids, steps, values)
        batch: list[tuple[int, np.ndarray, BucketStats]] = [(LEVELS[0], keys, rows)]
        for finer, level in zip(LEVELS, LEVELS[1:], strict=False):
            keys, rows = _merge_up(keys, rows, level - finer)
            batch.append((level, keys, rows))
        levels = np.concatenate([np.full(len(rows), level) for level, _, rows in batch])
        keys = np.concatenate([keys for _, keys, _ in batch])
        rows = BucketStats.concat([rows for _, _, rows in batch])
        if self._postgresql:
            self._insert_appended(run_id, keys, levels, rows)
            return
        # The stored rows of the touched buckets (consecutive touched buckets of one key and
        # level make one span), merged here and written back over them.
        spans = []
        for level, level_keys, level_rows in batch:
            span_keys, first, last = _spans(level_keys, level_rows.bucket)
            spans.append((np.full(span_keys.size, level), span_keys, first, last))
        old_levels, old_keys, old = self._read_summaries(
            run_id, *(np.concatenate(parts) for parts in zip(*spans, strict=True))
        )
        if len(old):
            levels = np.concatenate([old_levels, levels])
            keys = np.concatenate([old_keys, keys])
            both = BucketStats.concat([old, rows])
            order = np.lexsort((both.first_step, both.bucket, levels, keys))
            levels, keys, both = levels[order], keys[order], both.take(order)
            group = np.cumsum(np.concatenate(([1], (
                (keys[1:] != keys[:-1]) | (levels[1:] != levels[:-1]) | (both.bucket[1:] != both.bucket[:-1])
            ).astype(np.int64))))
            rows = _merge_disjoint(both, group)
            firsts = _firsts_of(group)
            levels, keys = levels[firsts], keys[firsts]
        self._write(run_id, [(int(level), keys[levels == level], rows.take(levels == level)) for level in LEVELS])

    def rebuild(self, run_id: int, window_buckets: int = 16, flush_points: int = 1_000_000) -> int:
        """Replace every summary of a run by one computed from all its points; returns how many
        points were read.

        Reads one key at a time, ``window_buckets`` buckets of the coarsest level at a time, so
        memory stays bounded whatever the run's length; a window starts at a coarsest-bucket
        boundary, so every bucket of every level lies inside one window and is computed from its
        points (the finest level) or the level below, as ``refresh`` computes it. Windows with no
        points are skipped by seeking to the next stored step. Rows are written every
        ``flush_points`` points read.
        """
        if window_buckets < 1:
            raise ValueError("window_buckets must be at least 1")
        coarsest = LEVELS[-1]
        width = window_buckets << coarsest
        self.session.execute(delete(MetricSummaryRow).where(MetricSummaryRow.run_id == run_id))
        point = MetricPointRow
        key_ids = [k for (k,) in self.session.execute(
            select(point.key_id).where(point.run_id == run_id).distinct().order_by(point.key_id)
        )]
        pending: list[tuple[int, np.ndarray, BucketStats]] = []
        pending_points = total = 0
        for key_id in key_ids:
            lo: int | None = None
            while True:
                query = select(func.min(point.step)).where(point.run_id == run_id, point.key_id == key_id)
                if lo is not None:
                    query = query.where(point.step >= lo)
                first = self.session.execute(query).scalar()
                if first is None:
                    break
                lo = (int(first) >> coarsest) << coarsest
                point_keys, steps, values = self._read_points(
                    run_id, np.array([key_id]), np.array([lo]), np.array([lo + width - 1])
                )
                keys, rows = _finest_rows(point_keys, steps, values)
                pending.append((LEVELS[0], keys, rows))
                for finer, level in zip(LEVELS, LEVELS[1:], strict=False):
                    keys, rows = _merge_up(keys, rows, level - finer)
                    pending.append((level, keys, rows))
                pending_points += steps.size
                if pending_points >= flush_points:
                    self._write(run_id, pending)
                    total += pending_points
                    pending, pending_points = [], 0
                lo += width
        if pending:
            self._write(run_id, pending)
        return total + pending_points

    # -- reads --------------------------------------------------------------------------------

    def extent(self, run_id: int, key_ids: Sequence[int]) -> tuple[int, int] | None:
        """The first and last step any of ``key_ids`` has in the run, from the coarsest level
        (a few rows per key), or None when they have no points."""
        if not key_ids:
            return None
        table = MetricSummaryRow
        lo, hi = self.session.execute(
            select(func.min(table.first_step), func.max(table.last_step)).where(
                table.run_id == run_id,
                table.key_id.in_(sorted(key_ids)),
                table.level == LEVELS[-1],
            )
        ).one()
        return None if lo is None else (int(lo), int(hi))

    def read_window(
        self, run_id: int, key_ids: Sequence[int], lo: int, hi: int, level: int | None
    ) -> dict[int, BucketStats]:
        """Per key, bucket rows covering exactly the steps ``lo..hi``, in step order.

        Whole buckets of ``level`` inside the window come from the summary; the window's ragged
        ends (and the whole window when ``level`` is None) come from the points, one row per
        point (level None) or one row per partial bucket.
        """
        keys = np.asarray(sorted(key_ids), dtype=np.int64)
        out: dict[int, list[BucketStats]] = {int(k): [] for k in keys}
        if keys.size == 0 or hi < lo:
            return {}
        if level is None:
            point_keys, steps, values = self._read_points(
                run_id, keys, np.full(keys.size, lo), np.full(keys.size, hi)
            )
            for key in out:
                mine = point_keys == key
                out[key].append(point_buckets(steps[mine], values[mine], steps[mine]))
        else:
            first_whole = -(-lo >> level)  # ceil(lo / 2**level)
            last_whole = ((hi + 1) >> level) - 1
            edges = []
            if first_whole > last_whole:
                edges.append((lo, hi))
            else:
                if lo < first_whole << level:
                    edges.append((lo, (first_whole << level) - 1))
                if hi > ((last_whole + 1) << level) - 1:
                    edges.append(((last_whole + 1) << level, hi))
            parts_keys = []
            parts = []
            for edge_lo, edge_hi in edges:
                point_keys, steps, values = self._read_points(
                    run_id, keys, np.full(keys.size, edge_lo), np.full(keys.size, edge_hi)
                )
                if steps.size:
                    rows = point_buckets(steps, values, _groups(point_keys, steps >> level))
                    parts_keys.append(point_keys[_firsts(rows)])
                    parts.append(rows)
            if first_whole <= last_whole:
                _, whole_keys, whole = self._read_summaries(
                    run_id, np.full(keys.size, level), keys, np.full(keys.size, first_whole),
                    np.full(keys.size, last_whole),
                )
                parts_keys.append(whole_keys)
                parts.append(whole)
            if parts:
                all_keys = np.concatenate(parts_keys)
                rows = BucketStats.concat(parts)
                order = np.lexsort((rows.first_step, all_keys))
                all_keys, rows = all_keys[order], rows.take(order)
                for key in out:
                    out[key].append(rows.take(all_keys == key))
        return {key: BucketStats.concat(parts) for key, parts in out.items()}

    # -- SQL ----------------------------------------------------------------------------------

    def _read_points(
        self, run_id: int, keys: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points of ``run_id`` with ``key = keys[i]`` and ``lo[i] <= step <= hi[i]``, sorted by
        key and step (the spans must not overlap)."""
        if keys.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
        if self._postgresql:
            # The ordered subquery feeds the aggregates in step order (one sort, not one per
            # column); ``_packed`` re-sorts should a plan ever deliver another order. Each span
            # is a LATERAL range scan of the primary key: as a plain join, a run newer than the
            # table's statistics is estimated at one row, and the planner hashed all of the
            # run's points to keep a few (docs/SCALING.md, "Single-node limits").
            found = self._packed(
                "SELECT key_id, string_agg(int8send(step), ''::bytea),"
                " string_agg(float8send(coalesce(value, 'NaN'::float8)), ''::bytea)"
                " FROM (SELECT s.k AS key_id, p.step, p.value"
                " FROM unnest(%s::int[], %s::int8[], %s::int8[]) AS s(k, lo, hi)"
                " CROSS JOIN LATERAL (SELECT step, value FROM metric_point"
                " WHERE run_id = %s AND key_id = s.k AND step BETWEEN s.lo AND s.hi ORDER BY step) AS p"
                " ORDER BY s.k, p.step) AS ordered"
                " GROUP BY key_id ORDER BY key_id",
                (keys.tolist(), lo.tolist(), hi.tolist(), run_id),
                [">i8", ">f8"],
            )
            return found[0], found[1].astype(np.int64), found[2].astype(np.float64)
        found: list[tuple[int, int, float | None]] = []
        for key, first, last in zip(keys.tolist(), lo.tolist(), hi.tolist(), strict=True):
            found.extend(
                self.session.execute(
                    select(MetricPointRow.key_id, MetricPointRow.step, MetricPointRow.value)
                    .where(
                        MetricPointRow.run_id == run_id,
                        MetricPointRow.key_id == key,
                        MetricPointRow.step.between(first, last),
                    )
                    .order_by(MetricPointRow.step)
                )
            )
        found.sort(key=lambda row: (row[0], row[1]))
        return (
            np.fromiter((r[0] for r in found), np.int64, len(found)),
            np.fromiter((r[1] for r in found), np.int64, len(found)),
            np.fromiter((np.nan if r[2] is None else r[2] for r in found), np.float64, len(found)),
        )

    def _read_summaries(
        self, run_id: int, levels: np.ndarray, keys: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, BucketStats]:
        """``(level, key, rows)`` of the rows with ``level = levels[i]``, ``key = keys[i]`` and
        ``lo[i] <= bucket <= hi[i]``, sorted by key, level and bucket."""
        if keys.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64), BucketStats.concat([])
        if self._postgresql:
            names = ["bucket", *_STAT_FIELDS]
            columns = ", ".join(
                f"string_agg({_SEND[name]}(coalesce({name}, {_MISSING[name]})), ''::bytea)"
                for name in names
            )
            # Grouped per key and level, both packed into one number (levels are below 32).
            # LATERAL range scans of the primary key, as in ``_read_points``.
            found = self._packed(
                f"SELECT key_id::int8 * 32 + level, {columns}"
                f" FROM (SELECT s.k AS key_id, s.l AS level, {', '.join('m.' + n for n in names)}"
                " FROM unnest(%s::int2[], %s::int[], %s::int8[], %s::int8[]) AS s(l, k, lo, hi)"
                f" CROSS JOIN LATERAL (SELECT {', '.join(names)} FROM metric_summary"
                " WHERE run_id = %s AND key_id = s.k AND level = s.l AND bucket BETWEEN s.lo AND s.hi"
                " ORDER BY bucket) AS m"
                " ORDER BY s.k, s.l, m.bucket) AS ordered"
                " GROUP BY key_id, level ORDER BY key_id, level",
                (levels.tolist(), keys.tolist(), lo.tolist(), hi.tolist(), run_id),
                [_WIRE[name] for name in ["bucket", *_STAT_FIELDS]],
            )
            stats = {
                name: column.astype(np.int64 if name == "bucket" or name in _INT_FIELDS else np.float64)
                for name, column in zip(["bucket", *_STAT_FIELDS], found[1:], strict=True)
            }
            return found[0] % 32, found[0] // 32, BucketStats(**stats)
        table = MetricSummaryRow
        found = []
        for level, key, first, last in zip(levels.tolist(), keys.tolist(), lo.tolist(), hi.tolist(), strict=True):
            found.extend(
                self.session.execute(
                    select(table.key_id, table.bucket, table.level, *[getattr(table, n) for n in _STAT_FIELDS])
                    .where(
                        table.run_id == run_id,
                        table.key_id == key,
                        table.level == level,
                        table.bucket.between(first, last),
                    )
                    .order_by(table.bucket)
                )
            )
        found.sort(key=lambda row: (row[0], row[2], row[1]))
        stats = {"bucket": np.fromiter((r[1] for r in found), np.int64, len(found))}
        for index, name in enumerate(_STAT_FIELDS, start=3):
            if name in _INT_FIELDS:
                missing = NO_STEP if name in _STEP_FIELDS else 0
                stats[name] = np.fromiter(
                    (missing if r[index] is None else r[index] for r in found), np.int64, len(found)
                )
            else:
                stats[name] = np.fromiter(
                    (np.nan if r[index] is None else r[index] for r in found), np.float64, len(found)
                )
        return (
            np.fromiter((r[2] for r in found), np.int64, len(found)),
            np.fromiter((r[0] for r in found), np.int64, len(found)),
            BucketStats(**stats),
        )

    def _packed(self, query: str, params: tuple, wire: list[str]) -> list[np.ndarray]:
        """Run a query returning one row per key, each further column a bytea of packed
        big-endian values; returns the key per value and each column as one array."""
        conn = driver_connection(self.session)
        with conn.cursor(binary=True) as cur:
            cur.execute(query, params)
            rows = cur.fetchall()
        columns: list[list[np.ndarray]] = [[] for _ in wire]
        keys = []
        for key, *blobs in rows:
            packed = [np.frombuffer(blob, dtype=dtype) for blob, dtype in zip(blobs, wire, strict=True)]
            if packed[0].size > 1 and np.any(packed[0][1:] < packed[0][:-1]):
                order = np.argsort(packed[0], kind="stable")
                packed = [column[order] for column in packed]
            for index, column in enumerate(packed):
                columns[index].append(column)
            keys.append(np.full(packed[0].size, key, dtype=np.int64))
        if not rows:
            return [np.empty(0, np.int64), *(np.empty(0, dtype=d) for d in wire)]
        return [np.concatenate(keys), *(np.concatenate(parts) for parts in columns)]

    def _insert_appended(self, run_id: int, keys: np.ndarray, levels: np.ndarray, rows: BucketStats) -> None:
        """Store the rows of an append-only batch on PostgreSQL (rows sorted by level, then key,
        then bucket).

        Only the first and last bucket of each key and level can already have a stored row in
        the common case, a batch that extends its series past what is stored: they are merged
        by ``_upsert_merging``. The buckets between them hold none of the run's stored points, so
        their rows are new and go in by one binary COPY, about four times cheaper per row than
        the merging insert. A batch interleaved with stored steps (even steps stored, odd ones
        posted) breaks that assumption: the COPY then meets a stored row, is undone by its
        savepoint, and every row is merged instead.
        """
        if keys.size == 0:
            return
        edge = np.ones(keys.size, dtype=bool)
        if keys.size > 2:
            series = (keys[1:] != keys[:-1]) | (levels[1:] != levels[:-1])
            edge[1:-1] = series[:-1] | series[1:]
        if np.count_nonzero(~edge) < _COPY_AT_LEAST:
            self._upsert_merging(run_id, keys, levels, rows)
            return
        inner = ~edge
        conn = driver_connection(self.session)
        try:
            # psycopg's transaction block inside the open transaction is a savepoint.
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(
                    f"COPY metric_summary (run_id, key_id, level, bucket, {', '.join(_STAT_FIELDS)})"
                    " FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.write(_summary_copy_payload(run_id, keys[inner], levels[inner], rows.take(inner)))
        except psycopg.errors.UniqueViolation:
            self._upsert_merging(run_id, keys, levels, rows)
            return
        self._upsert_merging(run_id, keys[edge], levels[edge], rows.take(edge))

    def _upsert_merging(self, run_id: int, keys: np.ndarray, levels: np.ndarray, rows: BucketStats) -> None:
        """Insert rows of points none of which is stored yet; a bucket that already has a row
        gets the two merged, in the same statement (the rules of ``_merge_disjoint``)."""
        if keys.size == 0:
            return
        columns = {"key_id": keys, "level": levels} | _as_dict(rows)
        names = list(columns)
        arrays = [_pg_array(name, columns[name]) for name in names]
        old, new = "metric_summary", "excluded"
        first = f"{new}.first_step < {old}.first_step"
        last = f"{new}.last_step > {old}.last_step"
        lower = f"({old}.min_value IS NULL OR {new}.min_value < {old}.min_value)"
        higher = f"({old}.max_value IS NULL OR {new}.max_value > {old}.max_value)"
        merge = {
            "first_step": f"least({old}.first_step, {new}.first_step)",
            "last_step": f"greatest({old}.last_step, {new}.last_step)",
            "count": f"{old}.count + {new}.count",
            "finite_count": f"{old}.finite_count + {new}.finite_count",
            "first_value": f"CASE WHEN {first} THEN {new}.first_value ELSE {old}.first_value END",
            "last_value": f"CASE WHEN {last} THEN {new}.last_value ELSE {old}.last_value END",
            "min_value": f"CASE WHEN {lower} THEN {new}.min_value ELSE {old}.min_value END",
            "min_step": f"CASE WHEN {lower} THEN {new}.min_step WHEN {new}.min_value = {old}.min_value"
                        f" THEN least({old}.min_step, {new}.min_step) ELSE {old}.min_step END",
            "max_value": f"CASE WHEN {higher} THEN {new}.max_value ELSE {old}.max_value END",
            "max_step": f"CASE WHEN {higher} THEN {new}.max_step WHEN {new}.max_value = {old}.max_value"
                        f" THEN least({old}.max_step, {new}.max_step) ELSE {old}.max_step END",
            # Count-weighted, as merge_buckets does it.
            "mean_value": f"CASE WHEN {new}.finite_count = 0 THEN {old}.mean_value"
                          f" WHEN {old}.finite_count = 0 THEN {new}.mean_value"
                          f" ELSE ({old}.mean_value * {old}.finite_count + {new}.mean_value * {new}.finite_count)"
                          f" / ({old}.finite_count + {new}.finite_count) END",
            "nan_step": f"least({old}.nan_step, {new}.nan_step)",
        }
        assert set(merge) == set(_STAT_FIELDS)
        conn = driver_connection(self.session)
        for array, dumper in _DUMPERS:
            conn.adapters.register_dumper(array, dumper)
        with conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO metric_summary (run_id, {', '.join(names)})"
                f" SELECT %b, * FROM unnest({', '.join('%b' for _ in names)})"
                " ON CONFLICT (run_id, key_id, level, bucket) DO UPDATE SET "
                + ", ".join(f"{name} = {merge[name]}" for name in _STAT_FIELDS),
                [run_id, *arrays],
            )

    def _write(self, run_id: int, levels: list[tuple[int, np.ndarray, BucketStats]]) -> None:
        columns = ["key_id", "level", "bucket", *_STAT_FIELDS]
        keys = np.concatenate([k for _, k, _ in levels])
        if keys.size == 0:
            return
        level_column = np.concatenate([np.full(len(rows), level) for level, _, rows in levels])
        merged = BucketStats.concat([rows for _, _, rows in levels])
        updates = ", ".join(f"{name} = excluded.{name}" for name in _STAT_FIELDS)
        names = ", ".join(columns)
        if self._postgresql:
            # One binary COPY built by numpy into a temporary table with metric_summary's
            # columns, then one merge.
            types = {">i2": "int2", ">i4": "int4", ">i8": "int8", ">f8": "float8"}
            conn = driver_connection(self.session)
            with conn.cursor() as cur:
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS ingest_summary_rows (run_id int4, key_id int4, level int2, "
                    + ", ".join(f"{name} {types[_WIRE[name]]}" for name in ["bucket", *_STAT_FIELDS])
                    + ") ON COMMIT DELETE ROWS; TRUNCATE ingest_summary_rows"
                )
                with cur.copy(f"COPY ingest_summary_rows (run_id, {names}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(_summary_copy_payload(run_id, keys, level_column, merged))
                cur.execute(
                    f"INSERT INTO metric_summary (run_id, {names}) SELECT run_id, {names} FROM ingest_summary_rows"
                    f" ON CONFLICT (run_id, key_id, level, bucket) DO UPDATE SET {updates}"
                )
            return
        arrays: dict[str, list] = {
            "key_id": keys.tolist(), "level": level_column.tolist(), "bucket": merged.bucket.tolist()
        }
        for name in _STAT_FIELDS:
            values = getattr(merged, name).tolist()
            if name in _STEP_FIELDS:
                arrays[name] = [None if v == NO_STEP else v for v in values]
            elif name in _INT_FIELDS:
                arrays[name] = values
            else:
                arrays[name] = [None if v != v else v for v in values]
        rows = list(zip(*[arrays[name] for name in columns], strict=True))
        marks = ", ".join("?" for _ in columns)
        cursor = driver_connection(self.session).cursor()
        cursor.executemany(
            f"INSERT INTO metric_summary (run_id, {names}) VALUES ({run_id}, {marks})"
            f" ON CONFLICT (run_id, key_id, level, bucket) DO UPDATE SET {updates}",
            rows,
        )
        cursor.close()


# Fewer new rows than this go through the merging insert with the rest: below it the COPY's own
# round trips cost more than it saves.
_COPY_AT_LEAST = 64


def _summary_copy_payload(run_id: int, keys: np.ndarray, levels: np.ndarray, rows: BucketStats) -> bytes:
    """A binary COPY stream of ``metric_summary`` rows, built by numpy: every tuple laid out at
    full width, then the value bytes of each NULL field (NaN in a value column, NO_STEP in a step
    column) cut out and its length set to -1, as the format wants."""
    columns = [("run_id", ">i4", np.full(keys.size, run_id)), ("key_id", ">i4", keys),
               ("level", ">i2", levels), ("bucket", ">i8", rows.bucket)]
    columns += [(name, _WIRE[name], getattr(rows, name)) for name in _STAT_FIELDS]
    layout = np.dtype([("n", ">i2")] + [
        item for index, (_, wire, _) in enumerate(columns) for item in ((f"l{index}", ">i4"), (f"v{index}", wire))
    ])
    tuples = np.empty(keys.size, dtype=layout)
    tuples["n"] = len(columns)
    keep: np.ndarray | None = None
    for index, (name, wire, column) in enumerate(columns):
        tuples[f"v{index}"] = column
        tuples[f"l{index}"] = int(wire[-1])
        null = _null(name, column)
        if null is not None and null.any():
            tuples[f"l{index}"][null] = -1
            if keep is None:
                keep = np.ones((keys.size, layout.itemsize), dtype=bool)
            offset = layout.fields[f"v{index}"][1]
            keep[null, offset:offset + int(wire[-1])] = False
    body = tuples.tobytes() if keep is None else tuples.view(np.uint8).reshape(keys.size, -1)[keep].tobytes()
    return b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8 + body + b"\xff\xff"


def _finest_rows(
    point_keys: np.ndarray, steps: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, BucketStats]:
    """Rows of the finest level, and the key of each, from points sorted by key and step."""
    finest = LEVELS[0]
    rows = point_buckets(steps, values, _groups(point_keys, steps >> finest))
    rows = BucketStats(**{**_as_dict(rows), "bucket": steps[_firsts(rows)] >> finest})
    return point_keys[_firsts(rows)], rows


def _merge_up(keys: np.ndarray, rows: BucketStats, shift: int) -> tuple[np.ndarray, BucketStats]:
    """Rows ``shift`` levels of two coarser, and the key of each, from rows sorted by key and
    bucket."""
    parent = rows.bucket >> shift
    group = _groups(keys, parent)
    return keys[_firsts_of(group)], merge_buckets(rows, group, parent)


# PostgreSQL's binary array format, built by numpy like the COPY streams: a header, then per
# element its length (-1 for NULL, with no bytes) and its big-endian bytes.
_ARRAY_TYPE = {"key_id": (">i4", 23), "level": (">i2", 21), "bucket": (">i8", 20)} | {
    name: (wire, {">i4": 23, ">i8": 20, ">f8": 701}[wire]) for name, wire in _WIRE.items() if name != "bucket"
}


def _null(name: str, column: np.ndarray) -> np.ndarray | None:
    """Where a column holds NULL: NO_STEP in a step column, NaN in a value column."""
    if name in _STEP_FIELDS:
        return column == NO_STEP
    if name in _STAT_FIELDS and name not in _INT_FIELDS:
        return np.isnan(column)
    return None


class _PgArray:
    """A one-dimensional array parameter, sent in PostgreSQL's binary format; one subclass per
    element type, each with its dumper."""

    element_oid = 0

    def __init__(self, column: np.ndarray, wire: str, null: np.ndarray | None) -> None:
        width = int(wire[-1])
        items = np.empty(column.size, dtype=[("length", ">i4"), ("value", wire)])
        items["length"] = width
        items["value"] = column
        has_null = null is not None and bool(null.any())
        if has_null:
            items["length"][null] = -1
            keep = np.ones((column.size, 4 + width), dtype=bool)
            keep[null, 4:] = False
            body = items.view(np.uint8).reshape(column.size, 4 + width)[keep].tobytes()
        else:
            body = items.tobytes()
        self.payload = struct.pack(">iiiii", 1, int(has_null), self.element_oid, column.size, 1) + body


_ARRAYS: dict[int, type[_PgArray]] = {}
_DUMPERS: list[tuple[type[_PgArray], type[Dumper]]] = []
for _element, _array in ((21, 1005), (23, 1007), (20, 1016), (701, 1022)):
    _ARRAYS[_element] = type(f"_PgArray{_element}", (_PgArray,), {"element_oid": _element})
    _DUMPERS.append((_ARRAYS[_element], type(f"_PgArrayDumper{_element}", (Dumper,), {
        "format": Format.BINARY, "oid": _array, "dump": lambda self, obj: obj.payload,
    })))


def _pg_array(name: str, column: np.ndarray) -> _PgArray:
    wire, element = _ARRAY_TYPE[name]
    return _ARRAYS[element](column, wire, _null(name, column))


def _merge_disjoint(rows: BucketStats, group: np.ndarray) -> BucketStats:
    """Rows merged per ``group`` (non-decreasing) when the rows of a group hold disjoint sets of
    steps that may interleave: sorted by first step within a group, the last step and value come
    from whichever row reaches furthest."""
    merged = merge_buckets(rows, group, rows.bucket)
    starts = _firsts_of(group)
    ends = np.append(starts[1:], group.size)
    last = np.lexsort((rows.last_step, group))[ends - 1]
    return BucketStats(**{**_as_dict(merged), "last_step": rows.last_step[last], "last_value": rows.last_value[last]})


def _as_dict(rows: BucketStats) -> dict[str, np.ndarray]:
    return {f.name: getattr(rows, f.name) for f in fields(BucketStats)}


def _firsts(rows: BucketStats) -> np.ndarray:
    """Index of each bucket's first point in the point arrays the rows were built from."""
    return np.concatenate(([0], np.cumsum(rows.count)[:-1])).astype(np.int64)


def _firsts_of(group: np.ndarray) -> np.ndarray:
    return np.concatenate(([0], np.flatnonzero(np.diff(group)) + 1)).astype(np.int64)
