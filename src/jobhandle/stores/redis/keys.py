"""The Redis store's key layout, and the URL that names a store.

Every key starts with the store's prefix ``P``, ``{name}`` (``name`` defaults to ``jobhandle``; the braces are
a Redis Cluster hash tag, so one store's keys share a slot and its Lua scripts may touch any of them). The
Lua scripts (lua/lib.lua) build the same names; what they hold:

=============================  ========  ==============================================================
key                            type      holds
=============================  ========  ==============================================================
P:job:<id>                     hash      the job's fields (the SQLite store's columns), as text
P:ph:<id>, P:eh:<id>           list      progress and error history entries (JSON), capped
P:seq                          string    the last change sequence number
P:changes                      zset      job id -> seq of its last change (the change feed)
P:events                       channel   each write script publishes its last seq (wake-ups)
P:created                      zset      every job id -> created_at (listings, retention)
P:status:<status>              zset      job id -> created_at, per status
P:user:<user>                  zset      job id -> created_at, per user
P:ids                          zset      every job id, score 0 (searched by prefix: ZRANGEBYLEX)
P:usernames                    zset      every user with jobs, score 0 (searched by prefix)
P:count:status|queue|type      hash      jobs by status, "<queue>\\0<status>", "<type>\\0<status>"
P:ucount:<user>                hash      one user's jobs by status (per-user stats and limits)
P:levels:<queue>               zset      the claim levels (priority + aging) with pending jobs
P:users:<level>:<queue>        zset      the users with pending jobs at that level -> their turn
P:pending:<level>:<len(queue)>:<queue>:<user>
                               zset      that user's pending job ids -> seq (claim order)
P:turns                        hash      user -> seq of the last job claimed for it (round robin)
P:aging:<levels gained>        zset      pending job id -> when it became due (priority aging)
P:due                          zset      scheduled/retrying job id -> run_at
P:leases                       zset      running job id -> lease_expires_at
P:wjobs:<worker>               set       the job ids running under a worker
P:workers                      zset      worker id -> last_seen;  P:worker:<id> hash: its registration
P:pools                        zset      worker pool id -> last_seen;  P:pool:<id> string: PoolInfo.to_doc()
P:idem                         hash      <len(user)>:<user>:<idempotency key> -> job id
P:deps:<id>                    hash      a job's parents -> condition
P:dependants:<id>              set       the jobs that depend on a job (whatever their status)
P:schedules                    zset      schedule id -> created_at;  P:schedule:<id> hash: its fields
P:schedules_due                zset      active schedule id -> next_fire_at
P:bucket:<key>                 hash      a token bucket (tokens, updated_at)
P:meta                         hash      last_cleanup, last_cleanup_removed
P:roll:<step>:<slot start>     hash      analytics rollups of that slot: "<type>\\0<metric>\\0<key>" -> count
                                         (analytics.py), expiring when its tier no longer keeps it
P:lease:<name>                 string    a maintenance task's lease: its holder, expiring by itself
P:uready:<user>                set       the P:users:<level>:<queue> keys the user is waiting in
P:served                       zset      user -> when last served (cleanup forgets old turns)
P:layout                       string    the key layout's version (store.py LAYOUT)
=============================  ========  ==============================================================

Only the last part of a key is free text, or it is preceded by its length, so no two names collide
whatever queues, users or ids contain.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import StoreURLError

DEFAULT_NAME = "jobhandle"


@dataclass(frozen=True, slots=True)
class RedisLocation:
    """Where a Redis store lives: the server URL redis-py understands, and the key prefix."""

    url: str
    prefix: str

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))


def parse_redis_url(url: str) -> RedisLocation:
    """``redis://[:password@]host[:port][/db][?prefix=name]`` (or ``rediss://``) -> its location.

    ``prefix`` names the store inside the server: stores with different names never see each other's jobs.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise StoreURLError(f"Redis URLs look like redis://host:6379/0 or redis://host:6379/0?prefix=myapp, "
                            f"not {url!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [value for key, value in query if key == "prefix"]
    name = names[-1] if names else DEFAULT_NAME
    if not name or any(c in name for c in "{}:"):
        raise StoreURLError(f"the Redis store's prefix must be a non-empty name without braces or colons, "
                            f"not {name!r} (in {url!r})")
    rest = urlencode([(key, value) for key, value in query if key != "prefix"])
    return RedisLocation(urlunsplit(parts._replace(query=rest)), "{" + name + "}")
