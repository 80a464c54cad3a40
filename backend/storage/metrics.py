"""Metric points: atomic, idempotent ingestion and fast reads.

Ingestion is one transaction per request and idempotent per (run, key, step): posting a point
again replaces its value. On PostgreSQL the rows go in through binary COPY built with numpy
(NaN is stored as a float8 NaN there; SQLite cannot hold NaN and stores NULL): straight into
``metric_point`` when nothing in the batch's step range exists yet (the common append case),
otherwise into a temporary table followed by one ``INSERT … ON CONFLICT`` merge. On SQLite an
``executemany`` upsert does the same job.

Writers of one run take turns only for the part that needs it: on PostgreSQL everything that can
be done alone (parsing, key ids, the COPY payload, the temporary table) comes first, then the
run's ingest lock (``lock_run_points``), then the point write and the summary refresh, and the
run's row is updated last, so its row lock is held only for the commit. See
docs/ARCHITECTURE.md, "An ingest", for why this order is deadlock-free and exact.
"""

from __future__ import annotations

import json
import random
import struct
import time

import numpy as np
import psycopg
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from backend.db import driver_connection
from backend.domain import IngestResult, KeySummary, PointBatch
from backend.errors import TooLarge
from backend.limits import MAX_KEYS_PER_REQUEST, MAX_KEYS_PER_RUN
from backend.models import MetricKeyRow, MetricPointRow, RunRow, utcnow
from backend.storage.summaries import SummaryStore
from backend.storage.values import from_storage

# How many times a merge that lost a deadlock or a serialization conflict is tried in all;
# beyond that the error reaches the API, which answers 503 with Retry-After.
MERGE_ATTEMPTS = 5

# The first half of the two-integer PostgreSQL advisory lock key of a run's ingest lock; the
# second half is the run id. No other advisory lock in the schema uses this value.
INGEST_LOCK_CLASS = 0x50530001

# A replacing batch is compared with the stored points over its steps' ranges unless they span
# more than this many times the batch's size. A key's steps make one range, cut wherever two
# consecutive steps are more than UNCHANGED_GAP apart (a batch that wraps around, steps 4,800 to
# 4,999 then 0 to 299, makes two).
UNCHANGED_SPAN = 4
UNCHANGED_GAP = 64


def lock_run_points(session: Session, run_id: int, *, wait: bool = True) -> bool:
    """Take run ``run_id``'s ingest lock until the transaction ends; with ``wait=False`` only if
    no other transaction holds it. Returns whether it was taken (always True on SQLite, whose
    first write already locks the whole database until commit, and when this transaction
    holds it already).

    Every transaction that writes the run's points holds it while it writes them and refreshes
    their summaries, so a refresh sees every point committed before it and no two writers of
    one run wait on each other's point rows. Taking it again in the same transaction is free.
    A transaction that locks the run's row and then ingests must take this lock first: the
    ingest order is this lock, then the run's row (docs/ARCHITECTURE.md, "An ingest").
    """
    if session.get_bind().dialect.name != "postgresql":
        return True
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    taken = session.execute(
        text(f"SELECT {function}(:cls, :run)"), {"cls": INGEST_LOCK_CLASS, "run": run_id}
    ).scalar_one()
    return wait or bool(taken)


# The key ids a run has points for, without scanning its points: a loose index scan that seeks
# from one key id to the next on the primary key. Statements go on with "SELECT … FROM k".
_RUN_KEY_IDS = (
    "WITH RECURSIVE k(key_id) AS ("
    " SELECT min(key_id) FROM metric_point WHERE run_id = :run"
    " UNION ALL"
    " SELECT (SELECT min(key_id) FROM metric_point WHERE run_id = :run AND key_id > k.key_id)"
    " FROM k WHERE k.key_id IS NOT NULL)"
)


class MetricStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # -- keys ---------------------------------------------------------------------------------

    def key_ids(self, names: list[str], *, create: bool) -> dict[str, int]:
        """Ids of metric keys by name; with ``create`` the missing ones are added."""
        if not names:
            return {}
        if create:
            # Sorted, so concurrent requests adding the same new keys lock them in one order.
            names = sorted(set(names))
            if self._dialect == "postgresql":
                self.session.execute(
                    text(
                        "INSERT INTO metric_key (name) SELECT unnest(CAST(:names AS text[])) "
                        "ON CONFLICT (name) DO NOTHING"
                    ),
                    {"names": names},
                )
            else:
                self.session.execute(
                    text("INSERT OR IGNORE INTO metric_key (name) VALUES (:name)"),
                    [{"name": n} for n in names],
                )
        rows = self.session.execute(
            select(MetricKeyRow.name, MetricKeyRow.id).where(MetricKeyRow.name.in_(names))
        )
        return {name: key_id for name, key_id in rows}

    # -- ingestion ----------------------------------------------------------------------------

    def ingest(self, run_id: int, batch: PointBatch) -> IngestResult:
        """Store every point of ``batch`` for ``run_id``; replace values at existing steps.

        Returns how many points were accepted and how many of those replaced a stored value.
        Points without a wall time get the time of receipt. The caller's transaction makes the
        whole batch atomic.
        """
        key_index, steps, values, times = batch.columns()
        if len(steps) == 0:
            return IngestResult(accepted=0, replaced=0)
        if len(batch.names) > MAX_KEYS_PER_REQUEST:
            raise TooLarge(
                f"keys: {len(batch.names)} distinct metric keys, the limit is {MAX_KEYS_PER_REQUEST} per request",
                field="keys",
            )
        # New keys are added before the run's ingest lock is taken: concurrent requests adding
        # the same keys wait on each other here, in name order, never while holding that lock.
        # On SQLite this insert, even when every key exists, is the transaction's first write: it
        # takes the database's write lock, so the read of existing points that follows sees every
        # writer committed before and the replacement count is exact. It must stay first
        # (tests/test_ingest_concurrency.py, the concurrent writers test, fails otherwise).
        # On PostgreSQL one probe finds the known keys, whether the run has each of them and
        # whether it has points in the batch's step range; only unknown keys are inserted.
        postgresql = self._dialect == "postgresql"
        probe, version = (
            self._probe(run_id, batch.names, int(steps.min()), int(steps.max())) if postgresql else (None, None)
        )
        if probe is None:
            ids = self.key_ids(batch.names, create=True)
        else:
            ids = {name: key_id for name, (key_id, _, _) in probe.items()}
            if len(ids) < len(batch.names):
                ids |= self.key_ids([name for name in batch.names if name not in ids], create=True)
        key_ids = np.asarray([ids[name] for name in batch.names], dtype=np.int32)[key_index]
        # One canonical order for every writer, key id then step: rows are locked in the order
        # they are written, so two requests with their keys in different orders cannot deadlock.
        if key_ids.size > 1 and np.any(np.diff(key_ids) < 0):
            order = np.lexsort((steps, key_ids))
            key_ids, steps, values, times = key_ids[order], steps[order], values[order], times[order]
        timed = ~np.isnan(times)
        times = np.where(timed, times, time.time())
        if probe is not None:
            # A key the probe did not find is new to the run, so it has no points either.
            clash = any(found for _, _, found in probe.values())
            new_keys = sorted(key_id for name, key_id in ids.items() if name not in probe or not probe[name][1])
            replaced, written = self._ingest_postgresql(
                run_id, new_keys, clash, version, key_ids, steps, values, times, timed
            )
        else:
            self._check_keys_per_run(run_id, sorted(ids.values()))
            replaced = self._ingest_sqlite(run_id, key_ids, steps, values, times, timed)
            written = np.ones(len(steps), dtype=bool)
        if not written.any():
            # Every point was already stored as posted: nothing changed, so neither the
            # summaries nor the run's row (whose updated_at keys the series cache) are touched.
            return IngestResult(accepted=len(steps), replaced=replaced)
        # Still under the ingest lock: the refresh sees every point of the run committed before.
        # Points left as they were need none: their buckets are already right. When no written
        # point replaced a stored one, the batch is merged into the summaries without reading
        # points back (docs/ARCHITECTURE.md, "Summaries").
        replaced_written = replaced - int(np.count_nonzero(~written))
        SummaryStore(self.session).refresh(
            run_id, key_ids[written], steps[written], values[written], appended=replaced_written == 0
        )
        # The run's row last, so its row lock (which other updates of the run wait for) is held
        # only from here to the commit.
        max_step = int(steps.max())
        # A Core statement on the table (the ORM's bulk update costs more than the update
        # itself); a copy of the run this session holds is expired instead, so it is read again.
        held = self.session.identity_map.get(identity_key(RunRow, run_id))
        if held is not None:
            self.session.expire(held, ["last_step", "updated_at"])
        run = RunRow.__table__
        self.session.connection().execute(
            update(run)
            .where(run.c.id == run_id)
            .values(
                last_step=func.coalesce(
                    func.max(RunRow.last_step, max_step)
                    if self._dialect == "sqlite"
                    else func.greatest(RunRow.last_step, max_step),
                    max_step,
                ),
                updated_at=utcnow(),
            )
        )
        return IngestResult(accepted=len(steps), replaced=replaced)

    def _probe(
        self, run_id: int, names: list[str], lo: int, hi: int
    ) -> tuple[dict[str, tuple[int, bool, bool]], str | None]:
        """For each of ``names`` that is a known key (PostgreSQL): its id, whether run ``run_id``
        has a point of it, and whether it has one in steps ``lo``..``hi``; two index probes a key,
        in one statement. With them, the run row's version (``xmin``) as this statement saw it
        (see ``_ingest_postgresql``), or None when no name is a known key.

        Each probe is a ``min(step)``, which PostgreSQL always answers from the primary key's
        first entry. An ``EXISTS`` over a run the statistics say is large was planned as a
        sequential scan of ``metric_point`` (120 ms for a run of 1M points, against 0.1 ms)."""
        point = "SELECT min(p.step) FROM metric_point AS p WHERE p.run_id = %(run)s AND p.key_id = k.id"
        # On the driver's connection: this runs on every ingest, and SQLAlchemy's handling of a
        # text statement cost several times the statement itself.
        conn = driver_connection(self.session)
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT k.name, k.id, ({point}) IS NOT NULL,"
                f" coalesce(({point} AND p.step >= %(lo)s) <= %(hi)s, false),"
                " (SELECT r.xmin::text FROM run AS r WHERE r.id = %(run)s)"
                " FROM metric_key AS k WHERE k.name = ANY(%(names)s::text[])",
                {"run": run_id, "names": names, "lo": lo, "hi": hi},
            )
            rows = cur.fetchall()
        version = rows[0][4] if rows else None
        return {name: (key_id, has, clash) for name, key_id, has, clash, _ in rows}, version

    def _check_keys_per_run(self, run_id: int, key_ids: list[int]) -> None:
        """Refuse a batch that would give the run more than ``MAX_KEYS_PER_RUN`` keys. Keys the
        run already has cost one index probe each; only new keys trigger the full count."""
        if not key_ids:
            return
        if self._dialect == "postgresql":
            # One LATERAL probe per key: as an anti-join, a run newer than the table's
            # statistics is estimated at one row and the planner read all of its points
            # (docs/SCALING.md, "Single-node limits").
            query = (
                "SELECT count(*) FROM unnest(CAST(:ids AS int[])) AS batch(k)"
                " LEFT JOIN LATERAL (SELECT 1 AS found FROM metric_point"
                " WHERE run_id = :run AND key_id = batch.k LIMIT 1) AS p ON true WHERE p.found IS NULL"
            )
            params: dict[str, object] = {"run": run_id, "ids": key_ids}
        else:
            query = (
                "SELECT count(*) FROM (SELECT value AS k FROM json_each(:ids)) AS batch WHERE NOT EXISTS "
                "(SELECT 1 FROM metric_point WHERE run_id = :run AND key_id = batch.k)"
            )
            params = {"run": run_id, "ids": json.dumps(key_ids)}
        new = self.session.execute(text(query), params).scalar_one()
        if not new:
            return
        existing = self.session.execute(
            text(
                _RUN_KEY_IDS +
                " SELECT count(key_id) FROM k"
            ),
            {"run": run_id},
        ).scalar_one()
        if existing + new > MAX_KEYS_PER_RUN:
            raise TooLarge(
                f"keys: this run has {existing} metric keys and the request adds {new}; "
                f"the limit is {MAX_KEYS_PER_RUN} per run",
                field="keys",
            )

    def _ingest_sqlite(
        self,
        run_id: int,
        key_ids: np.ndarray,
        steps: np.ndarray,
        values: np.ndarray,
        times: np.ndarray,
        timed: np.ndarray,
    ) -> int:
        existing = self.session.execute(
            select(MetricPointRow.key_id, MetricPointRow.step).where(
                MetricPointRow.run_id == run_id,
                MetricPointRow.key_id.in_(np.unique(key_ids).tolist()),
                MetricPointRow.step.between(int(steps.min()), int(steps.max())),
            )
        )
        found = {(k, s) for k, s in existing}
        rows = [
            (run_id, k, s, None if v != v else v, t, g)  # NaN is stored as NULL on SQLite
            for k, s, v, t, g in zip(
                key_ids.tolist(), steps.tolist(), values.tolist(), times.tolist(), timed.tolist(), strict=True
            )
        ]
        replaced = sum(1 for r in rows if (r[1], r[2]) in found) if found else 0
        cursor = driver_connection(self.session).cursor()
        # As on PostgreSQL (``_unchanged``), a point stored as posted (its value, and its wall
        # time when it came with one) is left as it is.
        cursor.executemany(
            "INSERT INTO metric_point (run_id, key_id, step, value, wall_time) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, key_id, step) DO UPDATE SET value = excluded.value, "
            "wall_time = excluded.wall_time "
            "WHERE metric_point.value IS NOT excluded.value OR (? AND metric_point.wall_time IS NOT excluded.wall_time)",
            rows,
        )
        cursor.close()
        return replaced

    def _ingest_postgresql(
        self,
        run_id: int,
        new_key_ids: list[int],
        clash: bool,
        version: str | None,
        key_ids: np.ndarray,
        steps: np.ndarray,
        values: np.ndarray,
        times: np.ndarray,
        timed: np.ndarray,
    ) -> tuple[int, np.ndarray]:
        """Write the points; returns how many replaced a stored point and which were written.

        ``clash`` says whether the run had points of the batch's keys in its step range when
        ``_probe`` looked, ``version`` the run row's version it saw, ``new_key_ids`` which of the
        batch's keys the run did not have."""
        conn = driver_connection(self.session)  # psycopg.Connection
        batch = key_ids, steps, values, times, timed
        # Before the run's ingest lock, reading without waiting: when the batch may replace
        # something, which of its points would change nothing; the rest are staged in the
        # temporary table for the merge.
        written, unchanged = self._to_write(run_id, batch, clash)
        if not written.any():
            # Nothing to write: the post takes effect as of that read, before any writer that
            # had not committed yet, and takes no lock.
            return unchanged, written
        payload = binary_copy_payload(run_id, *(column[written] for column in batch[:4]))
        if clash:
            self._stage(conn, payload)
        waited = not lock_run_points(self.session, run_id, wait=False)
        if waited:
            lock_run_points(self.session, run_id)
        if waited or (clash and self._run_version(run_id) != version):
            # Another writer of the run committed since the read above (every writer of points
            # updates the run's row, so its version moved). The batch is judged again, whole,
            # now that nobody else can write the run: a point left out as stored may have been
            # changed meanwhile and must be written after all, and a point the other writer
            # stored as this batch posts it is not written again (where writers overlap, as in
            # a shared run's first pass, each would otherwise rewrite and re-summarise what the
            # one before it wrote).
            again, unchanged = self._to_write(run_id, batch, True)
            if not again.any():
                return unchanged, again
            if not np.array_equal(again, written):
                written = again
                payload = binary_copy_payload(run_id, *(column[written] for column in batch[:4]))
                if clash:
                    self._stage(conn, payload)
        # Under the lock, so concurrent batches cannot together pass the per-run key limit. Keys
        # the run already had before the lock cannot add to its count.
        self._check_keys_per_run(run_id, new_key_ids)
        if not clash:
            # Append path. A writer that committed the same steps while this request waited for
            # the lock makes the COPY fail; the savepoint undoes it and the merge below runs.
            try:
                # psycopg's own transaction block inside the open transaction is a savepoint.
                with conn.transaction():
                    with conn.cursor() as cur:
                        with cur.copy(
                            "COPY metric_point (run_id, key_id, step, value, wall_time) "
                            "FROM STDIN (FORMAT BINARY)"
                        ) as copy:
                            copy.write(payload)
                return unchanged, written
            except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
                self._stage(conn, payload)
        for attempt in range(1, MERGE_ATTEMPTS + 1):
            try:
                # A savepoint: a deadlock or serialization failure (with a writer that does not
                # take the ingest lock) undoes only this merge, which is then tried again, up to
                # MERGE_ATTEMPTS times; the staged rows outlive it.
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(
                        "WITH merged AS ("
                        " INSERT INTO metric_point (run_id, key_id, step, value, wall_time)"
                        " SELECT run_id, key_id, step, value, wall_time FROM ingest_points"
                        " ORDER BY key_id, step"
                        " ON CONFLICT (run_id, key_id, step) DO UPDATE"
                        " SET value = EXCLUDED.value, wall_time = EXCLUDED.wall_time"
                        " RETURNING (xmax <> 0) AS was_update)"
                        " SELECT count(*) FILTER (WHERE was_update) FROM merged"
                    )
                    (replaced,) = cur.fetchone()
                return unchanged + int(replaced), written
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                if attempt == MERGE_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0.005, 0.02) * attempt)
        raise AssertionError("unreachable")

    def _to_write(
        self, run_id: int, batch: tuple[np.ndarray, ...], clash: bool
    ) -> tuple[np.ndarray, int]:
        """Which points of ``batch`` (key ids, steps, values, times, timed) to write, and how
        many are left out because the run holds them as posted; without ``clash``, all."""
        if not clash:
            return np.ones(len(batch[1]), dtype=bool), 0
        same = self._unchanged(run_id, *batch)
        return ~same, int(np.count_nonzero(same))

    def _run_version(self, run_id: int) -> str | None:
        """The run row's version (``xmin``): every transaction that writes the run's points
        updates the row, so it changes whenever one commits."""
        conn = driver_connection(self.session)
        with conn.cursor() as cur:
            cur.execute("SELECT xmin::text FROM run WHERE id = %s", (run_id,))
            row = cur.fetchone()
        return None if row is None else row[0]

    def _unchanged(
        self,
        run_id: int,
        key_ids: np.ndarray,
        steps: np.ndarray,
        values: np.ndarray,
        times: np.ndarray,
        timed: np.ndarray,
    ) -> np.ndarray:
        """Which points the run already holds as posted: the same value, bit for bit, and, when
        the point came with a wall time, the same wall time. Writing them again would change
        nothing, so they are not written; they count as replaced all the same.

        ``key_ids`` and ``steps`` are sorted by key, then step. The stored points are read per
        range of the batch's steps (see ``UNCHANGED_GAP``), packed as in ``_copy_out``; a batch
        whose ranges span more than ``UNCHANGED_SPAN`` times its size (a few far-apart steps) is
        not checked and is written whole.
        """
        unchanged = np.zeros(len(steps), dtype=bool)
        bounds = np.flatnonzero((np.diff(key_ids) != 0) | (np.diff(steps) > UNCHANGED_GAP)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.append(bounds, len(steps)) - 1
        lo, hi = steps[starts], steps[ends]
        if int((hi - lo + 1).sum()) > UNCHANGED_SPAN * len(steps):
            return unchanged
        conn = driver_connection(self.session)
        with conn.cursor(binary=True) as cur:
            # NULL values (none is written on PostgreSQL) are left out, so they never match.
            cur.execute(
                "SELECT key_id, string_agg(int8send(step), ''::bytea),"
                " string_agg(float8send(value), ''::bytea),"
                " string_agg(float8send(coalesce(wall_time, 'NaN'::float8)), ''::bytea)"
                " FROM (SELECT p.key_id, p.step, p.value, p.wall_time"
                " FROM unnest(%s::int[], %s::int8[], %s::int8[]) AS s(k, lo, hi)"
                " JOIN metric_point AS p ON p.run_id = %s AND p.key_id = s.k"
                " AND p.step BETWEEN s.lo AND s.hi AND p.value IS NOT NULL"
                " ORDER BY p.key_id, p.step) AS ordered GROUP BY key_id",
                (key_ids[starts].tolist(), lo.tolist(), hi.tolist(), run_id),
            )
            stored = {}
            for key, *blobs in cur.fetchall():
                # Bit patterns compared: 0.0 and -0.0 differ, a NaN matches the same NaN.
                columns = [np.frombuffer(blob, dtype=">i8").astype(np.int64) for blob in blobs]
                if columns[0].size > 1 and np.any(np.diff(columns[0]) < 0):
                    order = np.argsort(columns[0], kind="stable")
                    columns = [column[order] for column in columns]
                stored[key] = columns
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            found = stored.get(int(key_ids[start]))
            if found is None:
                continue
            have_steps, have_values, have_times = found
            mine = slice(start, end + 1)
            at = np.searchsorted(have_steps, steps[mine])
            hit = at < have_steps.size
            at = np.where(hit, at, 0)
            hit &= have_steps[at] == steps[mine]
            hit &= have_values[at] == values[mine].view(np.int64)
            hit &= ~timed[mine] | (have_times[at] == times[mine].view(np.int64))
            unchanged[mine] = hit
        return unchanged

    @staticmethod
    def _stage(conn: psycopg.Connection, payload: bytes) -> None:
        """The batch's rows into the session's temporary table, which the merge reads."""
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS ingest_points (run_id int, key_id int, step bigint, "
                "value float8, wall_time float8) ON COMMIT DELETE ROWS"
            )
            cur.execute("TRUNCATE ingest_points")
            with cur.copy("COPY ingest_points FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(payload)

    # -- reads --------------------------------------------------------------------------------

    def key_names(self, run_id: int) -> list[str]:
        """The names of the keys a run has points for, without scanning its points: a loose
        index scan that seeks from one key id to the next on the primary key."""
        rows = self.session.execute(
            text(
                _RUN_KEY_IDS +
                " SELECT metric_key.name FROM k JOIN metric_key ON metric_key.id = k.key_id"
                " ORDER BY metric_key.name"
            ),
            {"run": run_id},
        )
        return [name for (name,) in rows]

    def keys(self, run_id: int) -> list[KeySummary]:
        """Every key of a run with its point count and first and last step."""
        stmt = (
            select(
                MetricKeyRow.name,
                func.count(),
                func.min(MetricPointRow.step),
                func.max(MetricPointRow.step),
            )
            .join(MetricKeyRow, MetricKeyRow.id == MetricPointRow.key_id)
            .where(MetricPointRow.run_id == run_id)
            .group_by(MetricKeyRow.name)
            .order_by(MetricKeyRow.name)
        )
        return [
            KeySummary(key=name, count=count, first_step=first, last_step=last)
            for name, count, first, last in self.session.execute(stmt)
        ]

    def read_arrays(
        self,
        run_id: int,
        keys: list[str] | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Series as numpy arrays ``(steps int64, values float64)`` ordered by step; NaN as NaN.

        ``keys`` None reads every key of the run; keys without points are absent from the result.
        ``start``/``end`` bound the steps inclusively. This is the path the comparison uses, so
        on PostgreSQL each series arrives as two packed byte strings read straight into numpy.
        """
        if keys is None:
            ids = {s.key: 0 for s in self.keys(run_id)}
            ids = self.key_ids(list(ids), create=False)
        else:
            ids = self.key_ids(keys, create=False)
        if not ids:
            return {}
        names = {v: k for k, v in ids.items()}
        lo = 0 if start is None else start
        hi = 2**62 if end is None else end
        if self._dialect == "postgresql":
            key_col, step_col, value_col = self._copy_out(run_id, sorted(names), lo, hi)
        else:
            result = self.session.execute(
                select(MetricPointRow.key_id, MetricPointRow.step, MetricPointRow.value)
                .where(
                    MetricPointRow.run_id == run_id,
                    MetricPointRow.key_id.in_(sorted(names)),
                    MetricPointRow.step.between(lo, hi),
                )
                .order_by(MetricPointRow.key_id, MetricPointRow.step)
            ).all()
            key_col = np.fromiter((r[0] for r in result), dtype=np.int64, count=len(result))
            step_col = np.fromiter((r[1] for r in result), dtype=np.int64, count=len(result))
            value_col = np.fromiter(
                (from_storage(r[2]) for r in result), dtype=np.float64, count=len(result)
            )
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if len(key_col) == 0:
            return out
        # Rows come ordered by key then step: split at key boundaries.
        bounds = np.flatnonzero(np.diff(key_col)) + 1
        for chunk_keys, chunk_steps, chunk_values in zip(
            np.split(key_col, bounds), np.split(step_col, bounds), np.split(value_col, bounds), strict=True
        ):
            out[names[int(chunk_keys[0])]] = (chunk_steps, chunk_values)
        return out

    def _copy_out(self, run_id: int, key_ids: list[int], lo: int, hi: int) -> tuple[np.ndarray, ...]:
        # One row per key, each column packed server-side into a bytea of big-endian int8/float8:
        # the client then holds three buffers instead of a million row tuples.
        conn = driver_connection(self.session)
        keys_out, steps_out, values_out = [], [], []
        with conn.cursor(binary=True) as cur:
            # The sorted subquery feeds the aggregate in step order; the check below re-sorts
            # in numpy should the planner ever deliver another order.
            cur.execute(
                "SELECT key_id, string_agg(int8send(step), ''::bytea),"
                " string_agg(float8send(coalesce(value, 'NaN'::float8)), ''::bytea)"
                " FROM (SELECT key_id, step, value FROM metric_point WHERE run_id = %s"
                " AND key_id = ANY(%s) AND step BETWEEN %s AND %s ORDER BY key_id, step) AS ordered"
                " GROUP BY key_id ORDER BY key_id",
                (run_id, key_ids, lo, hi),
            )
            for key_id, steps_blob, values_blob in cur:
                steps = np.frombuffer(steps_blob, dtype=">i8").astype(np.int64)
                values = np.frombuffer(values_blob, dtype=">f8").astype(np.float64)
                if len(steps) > 1 and np.any(steps[1:] < steps[:-1]):
                    order = np.argsort(steps, kind="stable")
                    steps, values = steps[order], values[order]
                keys_out.append(np.full(len(steps), key_id, dtype=np.int64))
                steps_out.append(steps)
                values_out.append(values)
        if not keys_out:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0, dtype=np.float64)
        return np.concatenate(keys_out), np.concatenate(steps_out), np.concatenate(values_out)

    def wall_times_at(
        self, run_id: int, key_ids: np.ndarray, steps: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The wall times of the points ``(key_ids[i], steps[i])`` of ``run_id`` that exist and
        have one, as ``(steps, times)`` in the order found: one primary-key probe per pair, so
        the cost follows the number of pairs asked, never the run's length."""
        empty = (np.empty(0, np.int64), np.empty(0, np.float64))
        if len(steps) == 0:
            return empty
        keys = np.asarray(key_ids, dtype=np.int64).tolist()
        wanted = np.asarray(steps, dtype=np.int64).tolist()
        if self._dialect == "postgresql":
            # A LATERAL subquery with LIMIT is never turned into a join: one primary-key probe
            # per pair, whatever the statistics say (a plain join on a freshly written run was
            # planned as a hash join over all of its points).
            rows = self.session.execute(
                text(
                    "SELECT q.step, w.wall_time FROM unnest(CAST(:keys AS int[]), CAST(:steps AS int8[]))"
                    " AS q(key_id, step) CROSS JOIN LATERAL (SELECT p.wall_time FROM metric_point AS p"
                    " WHERE p.run_id = :run AND p.key_id = q.key_id AND p.step = q.step LIMIT 1) AS w"
                    " WHERE w.wall_time IS NOT NULL"
                ),
                {"run": run_id, "keys": keys, "steps": wanted},
            ).all()
        else:
            # CROSS JOIN keeps the pairs as the outer loop: SQLite's planner would otherwise
            # walk every point of the run and probe the pairs.
            rows = self.session.execute(
                text(
                    "SELECT p.step, p.wall_time FROM json_each(:pairs) AS q"
                    " CROSS JOIN metric_point AS p ON p.run_id = :run"
                    " AND p.key_id = json_extract(q.value, '$[0]') AND p.step = json_extract(q.value, '$[1]')"
                    " WHERE p.wall_time IS NOT NULL"
                ),
                {"run": run_id, "pairs": json.dumps(list(zip(keys, wanted, strict=True)))},
            ).all()
        if not rows:
            return empty
        return (
            np.fromiter((r[0] for r in rows), np.int64, len(rows)),
            np.fromiter((r[1] for r in rows), np.float64, len(rows)),
        )

    def first_wall_time(self, run_id: int) -> float | None:
        """The earliest wall time among the first points (lowest step) of each of the run's
        keys, or None when none of them has one: one primary-key probe per key."""
        found = self.session.execute(
            text(
                _RUN_KEY_IDS +
                " SELECT min((SELECT p.wall_time FROM metric_point AS p"
                " WHERE p.run_id = :run AND p.key_id = k.key_id ORDER BY p.step LIMIT 1))"
                " FROM k WHERE k.key_id IS NOT NULL"
            ),
            {"run": run_id},
        ).scalar_one()
        return None if found is None else float(found)

    def read_series(
        self,
        run_id: int,
        keys: list[str] | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> dict[str, tuple[list[int], list[float]]]:
        """Like ``read_arrays`` but as Python lists, for the JSON read endpoint."""
        return {
            name: (steps.tolist(), values.tolist())
            for name, (steps, values) in self.read_arrays(run_id, keys, start, end).items()
        }


_COPY_IN_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("l_run", ">i4"), ("run", ">i4"),
        ("l_key", ">i4"), ("key", ">i4"),
        ("l_step", ">i4"), ("step", ">i8"),
        ("l_value", ">i4"), ("value", ">f8"),
        ("l_time", ">i4"), ("time", ">f8"),
    ]
)
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)


def binary_copy_payload(
    run_id: int | np.ndarray, key_ids: np.ndarray, steps: np.ndarray, values: np.ndarray, times: np.ndarray
) -> bytes:
    """A whole binary COPY stream for metric_point rows, built with numpy in one pass.

    Every field is non-NULL (NaN is a float8 value on PostgreSQL, missing times were filled),
    so each tuple has the same 54-byte layout.
    """
    rows = np.empty(len(steps), dtype=_COPY_IN_ROW)
    rows["n"] = 5
    rows["l_run"] = 4
    rows["run"] = run_id
    rows["l_key"] = 4
    rows["key"] = key_ids
    rows["l_step"] = 8
    rows["step"] = steps
    rows["l_value"] = 8
    rows["value"] = values
    rows["l_time"] = 8
    rows["time"] = times
    return _COPY_SIGNATURE + rows.tobytes() + struct.pack(">h", -1)
