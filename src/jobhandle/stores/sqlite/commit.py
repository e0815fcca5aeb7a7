"""Write transactions of the SQLite store: the per-transaction bookkeeping (``Tx``) and group commit.

Every write primitive is a function of a ``Tx``, run by ``GroupCommit`` inside one ``BEGIN IMMEDIATE``
transaction (in a SAVEPOINT of its own when it shares the transaction with others). What a primitive changes
besides the jobs it writes is kept in step through the ``Tx``: the change sequence (``seqs``), the status
counters (``count``), the index of waiting users (``pend``) and the analytics rollups (``tally``), the last two
written by ``settle``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ...analytics import Tally
from ...models import check_move
from .sql import Q

log = logging.getLogger("jobhandle.store")

Move = tuple[str, str, str, str, int]
"""(queue, job_type, old status, new status, how many jobs): one kind of status change, for the counters."""


class Tx:
    """One write transaction: the connection, the change-sequence allocator and the deltas to keep in step.

    The first allocation of a transaction reserves its numbers in the stored sequence and reads it in one
    statement (a statement less than reading it, then writing it back); later ones are counted here and written
    back by ``flush`` before COMMIT. The write lock that BEGIN IMMEDIATE holds makes that safe across processes.
    A reservation undone by ROLLBACK TO (its primitive failed, in a group commit) takes back only numbers that
    primitive's rolled-back changes had; any number handed out after it is above what is stored, so ``flush``
    writes it.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._last: int | None = None
        self._stored: int | None = None
        self._arrived: set[tuple[str, int, str]] = set()  # (queue, level, user) a job became pending at
        self._left: set[tuple[str, int, str]] = set()  # (queue, level, user) a pending job left
        self.tally = Tally()  # what the running primitive adds to the analytics rollups

    # -- the change sequence -------------------------------------------------------------------------------

    def seqs(self, n: int) -> range:
        if self._last is None:
            self._last = self._stored = int(self.conn.execute(Q["reserve_seqs"], (n,)).fetchone()[0])
            return range(self._last - n + 1, self._last + 1)
        first = self._last + 1
        self._last += n
        return range(first, self._last + 1)

    def seq(self) -> int:
        return self.seqs(1)[0]

    def flush(self) -> None:
        if self._last is not None and self._last != self._stored:
            self.conn.execute(Q["set_seq"], {"value": self._last})
            self._stored = self._last

    # -- counters --------------------------------------------------------------------------------------------

    def count(self, moves: Iterable[Move], now_ts: float) -> None:
        """Keep the status counters exact (see ``counters`` in the schema), one statement for all ``moves``;
        jobs that ended, or failed an attempt to retry, go into the rollups at ``now_ts``."""
        delta: dict[tuple[str, str, str], int] = {}
        for queue, job_type, old, new, n in moves:
            if old != new:
                check_move(old, new)
                delta[queue, job_type, new] = delta.get((queue, job_type, new), 0) + n
                delta[queue, job_type, old] = delta.get((queue, job_type, old), 0) - n
                self.tally.moved(job_type, old, new, n, now_ts)
        self.conn.executemany(Q["count_add"], [(q, t, s, n) for (q, t, s), n in delta.items() if n])

    # -- the index of waiting users ----------------------------------------------------------------------

    def pend(self, queue: str, level: int, user_id: str, n: int) -> None:
        """A job of ``user_id`` became pending at claim ``level`` in ``queue`` (``n`` > 0), or left otherwise
        than by being claimed (``n`` < 0: the claim keeps ready_users itself)."""
        (self._arrived if n > 0 else self._left).add((queue, level, user_id))

    def settle(self) -> None:
        """Bring ready_users in step with what ``pend`` was told, and the rollups with the tally: at the end of
        every primitive, and before a claim reads the index."""
        if self._arrived:
            arrived, self._arrived = self._arrived, set()
            self.conn.executemany(Q["ready_add"], arrived)
        if self._left:
            left, self._left = self._left, set()
            self.conn.executemany(Q["ready_leave"], left)
        if self.tally:
            self.conn.executemany(Q["rollup_add"], self.tally.rows())
            self.tally.clear()

    def discard(self) -> None:
        """Forget what a primitive that is being rolled back collected."""
        self._arrived.clear()
        self._left.clear()
        self.tally.clear()


class Call:
    """A write primitive waiting to be run, and then its result."""

    __slots__ = ("fn", "result", "error", "done")

    def __init__(self, fn: Callable[[Tx], Any]) -> None:
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommit:
    """Group commit without a writer thread (leader/follower).

    A caller that finds no transaction running becomes the leader: it runs every queued primitive in one
    transaction, each inside its own SAVEPOINT (so each stays atomic and one that raises is rolled back alone),
    then commits once. Callers arriving meanwhile queue up and wait; one of them leads the next round. Alone,
    a primitive runs in its caller's thread with no hand-off; under load many primitives share one COMMIT.
    ``after_commit`` runs after each round that wrote something (``hooks`` that must not fail: wake-ups).
    """

    MAX_BATCH = 256

    def __init__(self, conn: sqlite3.Connection, after_commit: Callable[[], None]) -> None:
        self._conn = conn
        self._after_commit = after_commit
        self._cond = threading.Condition()
        self._queue: list[Call] = []
        self._leading = False

    def call(self, fn: Callable[[Tx], Any]) -> Any:
        item = Call(fn)
        with self._cond:
            self._queue.append(item)
        while True:  # lead rounds until our own primitive ran (it may be past the first batch)
            with self._cond:
                while self._leading and not item.done:
                    self._cond.wait()
                if item.done:
                    break
                self._leading = True
                batch, self._queue = self._queue[:self.MAX_BATCH], self._queue[self.MAX_BATCH:]
            changes = self._conn.total_changes
            try:
                self._transact(batch)
            finally:
                with self._cond:
                    self._leading = False
                    for done in batch:
                        done.done = True
                    self._cond.notify_all()
                if self._conn.total_changes != changes:  # a round that wrote nothing (a claim that found no
                    self._announce()                     # job) has nothing to announce: it wakes no one
        if item.error is not None:
            raise item.error
        return item.result

    def _announce(self) -> None:
        """Run ``after_commit``. It cannot undo the commit, so it must not fail the callers either: a caller told
        "failed" about a claim that committed would leave the claimed jobs running under nobody."""
        try:
            self._after_commit()
        except Exception:  # noqa: BLE001 - logged; waiters fall back to their timeouts
            log.exception("a SQLite store's wake-up after a commit failed")

    def _transact(self, batch: list[Call]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            tx = Tx(conn)
            for item in batch:
                if len(batch) > 1:
                    conn.execute("SAVEPOINT primitive")
                try:
                    item.result = item.fn(tx)
                    tx.settle()
                except Exception as exc:  # noqa: BLE001 - its caller gets it; the others go on
                    tx.discard()
                    if len(batch) == 1:
                        raise
                    conn.execute("ROLLBACK TO primitive")
                    item.error = exc
                if len(batch) > 1:
                    conn.execute("RELEASE primitive")
            tx.flush()
            conn.execute("COMMIT")
        except BaseException as exc:  # the transaction itself failed: every caller hears of it
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for item in batch:
                item.error = exc
