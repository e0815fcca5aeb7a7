"""Claiming in the SQLite store: due jobs promoted, then the fair pick (see ``Store.claim`` for the order).

Whose turn it is comes off the ready_users index (migrations/0002): the users waiting at a level in turn
order, read from where the last read stopped, so a claim costs a seek per queue and level plus one row per
user it looks at, however many users wait. It looks at the users it serves and those it skips because they
are at their limit, and no user can be at the limit without running jobs: the rows a claim reads are bounded
by the jobs it takes plus the jobs running, never by the users waiting.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Callable, Iterator, Sequence

from ...models import Job, JobStatus
from ..base import NO_LIMIT, ClaimRequest, ConcurrencyLimits
from .codec import row_to_job
from .commit import Tx
from .sql import Q

UNLIMITED = NO_LIMIT
"""Stands for "no limit" and "above every priority" in the claim's arithmetic."""
TURN_READ_SLACK = 8
"""Users read from ready_users beyond those a claim still needs, for the ones it finds at their limit."""

Pick = tuple[str, str, int]
"""A job the claim chose: (job_id, user_id, the claim level it waited at)."""


def promote_due(tx: Tx, now_ts: float) -> None:
    """Due scheduled and retrying jobs become pending."""
    due = tx.conn.execute(Q["due_jobs"], {"now": now_ts}).fetchall()
    if not due:
        return
    tx.conn.executemany(Q["make_pending"], [{"job_id": row[0], "seq": s}
                                            for row, s in zip(due, tx.seqs(len(due)), strict=True)])
    tx.count((queue, job_type, old, JobStatus.PENDING.value, 1) for _, queue, job_type, old, _, _ in due)
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
    picks = pick_fairly(tx.conn, request.queues, *limits_now(tx.conn, request.limit, request.limits))
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
    tx.count((job.queue, job.job_type, JobStatus.PENDING.value, JobStatus.RUNNING.value, 1) for job in jobs)
    for job, (_, user_id, level) in zip(jobs, picks, strict=True):
        tx.pend(job.queue, level, user_id, -1)
    turns = {job.user_id: job.seq for job in jobs}  # each user's turn: the seq of its last job claimed
    rows = [{"u": u, "turn": t, "now": now_ts} for u, t in turns.items()]
    tx.conn.executemany(Q["set_user_turn"], rows)
    tx.conn.executemany(Q["ready_turn"], rows)
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
                per_user_max: int) -> list[Pick]:
    """Up to ``allowed`` pending jobs in claim order (see Store.claim), skipping users at their limit."""
    picks: list[Pick] = []
    if allowed <= 0:
        return picks
    first = [row for q in queues for row in conn.execute(Q["first_pending"], {"q": q})][:2]
    if len(first) < 2:  # none or one job pending: no order to decide, only the user's limit to respect
        return [(job_id, user, level) for job_id, user, level in first if running.get(user, 0) < per_user_max]
    level = _next_level(conn, queues, UNLIMITED)
    while level is not None and len(picks) < allowed:
        ring = users_in_turn(conn, queues, level, allowed - len(picks),
                             lambda u: running.get(u, 0) < per_user_max)
        after = dict.fromkeys(ring, -1)
        while ring and len(picks) < allowed:
            for user in list(ring):
                # Several users take turns, one job each; a lone user takes all it may in one query.
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


def users_in_turn(conn: sqlite3.Connection, queues: Sequence[str], level: int, need: int,
                  eligible: Callable[[str], bool]) -> list[str]:
    """The first ``need`` users waiting at ``level`` in any of ``queues`` for whom ``eligible`` holds, in turn
    order: the least recently served first, then by name. (A user's turn is the same in every queue, so the
    queues' orders merge into one.) Fewer than ``need`` means these are all of them."""
    chunk = need + TURN_READ_SLACK
    streams = [_waiting(conn, q, level, chunk) for q in queues]
    merged: Iterator[tuple[int, str]] = streams[0] if len(streams) == 1 else heapq.merge(*streams)
    ring: list[str] = []
    seen: set[str] = set()
    for _, user in merged:
        if user in seen:
            continue
        seen.add(user)
        if eligible(user):
            ring.append(user)
            if len(ring) == need:
                break
    return ring


def _waiting(conn: sqlite3.Connection, queue: str, level: int, chunk: int) -> Iterator[tuple[int, str]]:
    """(turn, user) of the users waiting at ``level`` in ``queue``, in turn order, read ``chunk`` at a time."""
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
