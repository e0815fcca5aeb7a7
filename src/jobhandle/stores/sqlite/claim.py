"""Claiming in the SQLite store: due jobs promoted, then the fair pick (see ``Store.claim`` for the order).

Whose turn it is comes off the ready_users index (migrations/0002): the users waiting at a level in turn
order, read from where the last read stopped, so a claim costs a seek per queue and level plus one row per
user it looks at, however many users wait. It looks at the users it serves, those it skips because they are
at their limit (no user can be at the limit without running jobs) and those a claim drained since (a claim
only moves its users' turns: the next pick that meets a drained user marks it, once): the rows a claim reads
are bounded by the jobs it takes, the jobs running and the claims since, never by the users waiting.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterator, Sequence

from ...analytics import waited
from ...models import Job, JobStatus
from ..base import NO_LIMIT, ClaimRequest, ConcurrencyLimits
from .codec import row_to_job
from .commit import Tx
from .sql import Q

UNLIMITED = NO_LIMIT
"""Stands for "no limit" and "above every priority" in the claim's arithmetic."""
TURN_READ_SLACK = 8
"""Users read from ready_users beyond those a claim still needs, for the ones it finds at their limit."""

PENDING, RUNNING = JobStatus.PENDING.value, JobStatus.RUNNING.value

Pick = tuple[str, str, int]
"""A job the claim chose: (job_id, user_id, the claim level it waited at)."""


def promote_due(tx: Tx, now_ts: float) -> None:
    """Due scheduled and retrying jobs become pending."""
    due = tx.conn.execute(Q["due_jobs"], {"now": now_ts}).fetchall()
    if not due:
        return
    tx.conn.executemany(Q["make_pending"], [{"job_id": row[0], "seq": s}
                                            for row, s in zip(due, tx.seqs(len(due)), strict=True)])
    tx.count([(queue, job_type, old, PENDING, 1) for _, queue, job_type, old, _, _ in due], now_ts)
    for _, queue, _, _, user_id, level in due:
        tx.pend(queue, level, user_id, 1)


def claimable(conn: sqlite3.Connection, queues: Sequence[str], now_ts: float,
              limits: ConcurrencyLimits | None) -> bool:
    """A read-only first look: could a claim start anything now? Waiting with nothing claimable (no work, or
    with limits every user with work at their limit) must not take the write lock, or idle slots would storm it
    on every change."""
    due, pending = conn.execute(Q["claim_lookout"], {"q": queues[0]}).fetchone()
    if due is not None and due <= now_ts:
        return True
    if limits is None:
        return bool(pending) or any(conn.execute(Q["any_pending"], {"q": q}).fetchone() for q in queues[1:])
    return bool(pick_fairly(conn, queues, *limits_now(conn, 1, limits)))


def claim(tx: Tx, request: ClaimRequest, now_ts: float) -> list[Job]:
    """``Store.claim`` inside the caller's transaction."""
    promote_due(tx, now_ts)
    tx.settle()  # the pick reads ready_users
    drained: list[tuple[int, str]] = []
    picks = pick_fairly(tx.conn, request.queues, *limits_now(tx.conn, request.limit, request.limits), drained)
    for level, user in drained:  # users it found waiting nowhere they were marked: marked so, for the next picks
        for queue in request.queues:
            tx.pend(queue, level, user, -1)
    if not picks:
        return []
    lease = now_ts + request.lease_seconds
    seqs = tx.seqs(len(picks))
    tx.conn.executemany(Q["start_job"], [
        {"job_id": job_id, "worker_id": request.worker_id, "now": now_ts, "lease": lease, "seq": seq}
        for (job_id, _, _), seq in zip(picks, seqs, strict=True)])
    jobs = [row_to_job(r) for r in tx.conn.execute(Q["jobs_by_seq"], {"first": seqs[0], "last": seqs[-1]})]
    if len(jobs) != len(picks):  # picked under the write lock: every pick is pending, every update applies
        raise RuntimeError(f"claim started {len(jobs)} of the {len(picks)} jobs it picked")
    tx.count([(job.queue, job.job_type, PENDING, RUNNING, 1) for job in jobs], now_ts)
    for job in jobs:
        tx.tally.started(job.job_type, waited(job), now_ts)
    turns = {job.user_id: job.seq for job in jobs}  # each user's turn: the seq of its last job claimed
    tx.conn.executemany(Q["served"], [{"u": u, "turn": t, "now": now_ts} for u, t in turns.items()])
    return jobs


def limits_now(conn: sqlite3.Connection, limit: int,
               limits: ConcurrencyLimits | None) -> tuple[int, dict[str, int], int]:
    """(jobs that may still start, running jobs per user, per-user maximum) under ``limits``."""
    if limits is None:
        return limit, {}, UNLIMITED
    in_all = conn.execute(Q["running_total"]).fetchone()[0]
    return (min(limit, limits.global_max - in_all), dict(conn.execute(Q["running_per_user"]).fetchall()),
            limits.per_user_max)


def pick_fairly(conn: sqlite3.Connection, queues: Sequence[str], allowed: int, running: dict[str, int],
                per_user_max: int, drained: list[tuple[int, str]] | None = None) -> list[Pick]:
    """Up to ``allowed`` pending jobs in claim order (see Store.claim), skipping users at their limit.

    Round one goes down the users waiting at the level in turn order, one job each; a user whose row says it
    waits but who has no job there any more (a claim took its last one: claims leave the row as it is) is
    skipped and added to ``drained``, for the caller to mark. Once every waiting user had its turn, the ones
    with jobs left take turns again (a lone user takes all it may in one query)."""
    picks: list[Pick] = []
    if allowed <= 0:
        return picks
    first = [row for q in queues for row in conn.execute(Q["first_pending"], {"q": q})][:2]
    if len(first) < 2:  # none or one job pending: no order to decide, only the user's limit to respect
        return [(job_id, user, level) for job_id, user, level in first if running.get(user, 0) < per_user_max]
    level = _next_level(conn, queues, UNLIMITED)
    while level is not None and len(picks) < allowed:
        ring: list[str] = []
        after: dict[str, int] = {}
        everyone = True  # whether round one went through every user waiting at the level
        for user in users_in_turn(conn, queues, level, allowed - len(picks)):
            if running.get(user, 0) >= per_user_max:
                continue
            found = _next_of_user(conn, queues, level, user, -1, 1)
            if not found:
                if drained is not None:
                    drained.append((level, user))
                continue
            picks.append((found[0][0], user, level))
            after[user] = found[0][1]
            running[user] = running.get(user, 0) + 1
            if running[user] < per_user_max:
                ring.append(user)
            if len(picks) == allowed:
                everyone = False
                break
        while everyone and ring and len(picks) < allowed:
            for user in list(ring):
                n = 1 if len(ring) > 1 else min(allowed - len(picks), per_user_max - running.get(user, 0))
                found = _next_of_user(conn, queues, level, user, after[user], n)
                if not found:
                    ring.remove(user)
                    continue
                picks.extend((job_id, user, level) for job_id, _ in found)
                after[user] = found[-1][1]
                running[user] = running.get(user, 0) + len(found)
                if running[user] >= per_user_max:
                    ring.remove(user)
                if len(picks) == allowed:
                    break
        if len(picks) < allowed:
            level = _next_level(conn, queues, level)
    return picks


def users_in_turn(conn: sqlite3.Connection, queues: Sequence[str], level: int, need: int) -> Iterator[str]:
    """The users marked waiting at ``level`` in any of ``queues``, in turn order: the least recently served
    first, then by name (a user's turn is the same in every queue, so the queues' orders merge into one), read
    from ready_users_turn ``need`` (and a few) at a time."""
    chunk = need + TURN_READ_SLACK
    streams = [_waiting(conn, q, level, chunk) for q in queues]
    merged: Iterator[tuple[int, str]] = streams[0] if len(streams) == 1 else heapq.merge(*streams)
    seen: set[str] = set()
    for _, user in merged:
        if user not in seen:
            seen.add(user)
            yield user


def _waiting(conn: sqlite3.Connection, queue: str, level: int, chunk: int) -> Iterator[tuple[int, str]]:
    """(turn, user) of the users marked waiting at ``level`` in ``queue``, in turn order, ``chunk`` at a time."""
    turn, user = -1, ""
    while True:
        rows = conn.execute(Q["ready_users_after"], {"q": queue, "level": level, "turn": turn, "u": user,
                                                     "n": chunk}).fetchall()
        yield from ((r[0], r[1]) for r in rows)
        if len(rows) < chunk:
            return
        turn, user = rows[-1][0], rows[-1][1]


def _next_level(conn: sqlite3.Connection, queues: Sequence[str], below: int) -> int | None:
    levels = [conn.execute(Q["top_priority"], {"q": q, "below": below}).fetchone()[0] for q in queues]
    return max((level for level in levels if level is not None), default=None)


def _next_of_user(conn: sqlite3.Connection, queues: Sequence[str], level: int, user: str, after: int,
                  n: int) -> list[tuple[str, int]]:
    """``user``'s next ``n`` pending jobs at ``level`` after seq ``after``, in order: (job_id, seq)."""
    found = [(r[0], r[1]) for q in queues for r in conn.execute(Q["next_of_user"], {
        "q": q, "p": level, "u": user, "after": after, "n": n})]
    if len(queues) > 1:
        found.sort(key=lambda r: r[1])
    return found[:n]
