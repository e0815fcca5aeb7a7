"""What only the Redis store has: its URL and key prefix, stores kept apart on one server, wake-ups that
survive a lost subscription, its key layout's version and upgrades. (Its behaviour as a store is the
conformance suite's, run on every store.)"""

from __future__ import annotations

import json
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from helpers import submit, wait_until
from store_urls import private_redis_server, redis_url

from jobhandle import (
    HandlerRegistry,
    InvalidParameterError,
    JobQueue,
    JobStatus,
    Settings,
    StoreUnavailableError,
    StoreURLError,
)
from jobhandle.api import create_app
from jobhandle.errors import StoreConflictError, StoreSchemaError
from jobhandle.models import Job, utcnow
from jobhandle.stores import JobQuery, Outcome, open_store
from jobhandle.stores.base import AttemptKey, ClaimRequest
from jobhandle.stores.redis.codec import finish_item
from jobhandle.stores.redis.keys import parse_redis_url
from jobhandle.stores.redis.scripts import FUNCTIONS
from jobhandle.stores.redis.store import RedisStore

with warnings.catch_warnings():  # Starlette asks for httpx2 here; httpx is what the project installs
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_url_without_prefix_uses_the_default_name() -> None:
    location = parse_redis_url("redis://cache:6379/2")
    assert (location.url, location.prefix) == ("redis://cache:6379/2", "{jobhandle}")
    assert location.key("job", "abc") == "{jobhandle}:job:abc"


def test_url_prefix_is_taken_out_and_other_options_kept() -> None:
    location = parse_redis_url("rediss://:secret@cache:6380/1?socket_timeout=5&prefix=billing")
    assert location.prefix == "{billing}"
    assert location.url == "rediss://:secret@cache:6380/1?socket_timeout=5"


@pytest.mark.parametrize("url", ["redis://", "redis://h/0?prefix=", "redis://h/0?prefix=a:b",
                                 "redis://h/0?prefix={a}", "http://h:6379"])
def test_bad_urls_are_refused_naming_the_problem(url: str) -> None:
    with pytest.raises(StoreURLError) as error:
        parse_redis_url(url)
    assert "redis://" in error.value.message


@pytest.fixture
def two_stores(request: pytest.FixtureRequest) -> Iterator[tuple[RedisStore, RedisStore]]:
    first, second = open_store(redis_url(request)), open_store(redis_url(request))
    assert isinstance(first, RedisStore) and isinstance(second, RedisStore)
    yield first, second
    first.close()
    second.close()


def test_stores_with_different_prefixes_on_one_server_never_meet(two_stores: tuple[RedisStore, RedisStore]) -> None:
    first, second = two_stores
    job = submit(first, utcnow())
    assert second.get(job.job_id) is None
    assert second.list_jobs(JobQuery()) == []
    assert second.counts().by_status == {}
    assert second.claim(ClaimRequest("w", ["default"], 10, 30), utcnow()) == []
    assert [j.job_id for j in first.claim(ClaimRequest("w", ["default"], 10, 30), utcnow())] == [job.job_id]


def test_waiters_hear_other_instances_again_after_the_subscription_was_cut(request: pytest.FixtureRequest) -> None:
    url = redis_url(request)
    name = parse_redis_url(url).prefix.strip("{}")
    waiter, writer = open_store(url), open_store(url)
    assert isinstance(waiter, RedisStore)
    server = redis.Redis.from_url(request.getfixturevalue("redis_server"))
    channel = waiter._key("events")
    try:
        waiter.wait_for_change(waiter.change_version, 0)  # starts the listener
        assert server.pubsub_numsub(channel)[0][1] == 1
        ours = [c["id"] for c in server.client_list(_type="pubsub") if c["name"] == f"jobhandle-{name}"]
        assert len(ours) == 1, "the waiter's listener, named after its store"
        server.client_kill_filter(_id=ours[0])
        wait_until(lambda: server.pubsub_numsub(channel)[0][1] == 1, timeout=10,
                   message="the listener to subscribe again")
        seen = waiter.change_version
        submit(writer, utcnow())
        assert waiter.wait_for_change(seen, 5) != seen
    finally:
        server.close()
        waiter.close()
        writer.close()


def cycle(store: RedisStore) -> None:
    """Submit, claim and finish a job: every kind of call works."""
    job = submit(store, utcnow())
    [claimed] = store.claim(ClaimRequest("w", ["default"], 10, 30), utcnow())
    assert claimed.job_id == job.job_id
    assert store.finish(AttemptKey(job.job_id, "w", 1), Outcome(JobStatus.COMPLETED, result=1), utcnow())
    assert store.get(job.job_id).status is JobStatus.COMPLETED  # type: ignore[union-attr]


def test_the_calls_run_as_functions_of_one_library_loaded_once(request: pytest.FixtureRequest) -> None:
    server = redis.Redis.from_url(request.getfixturevalue("redis_server"))
    first, second = open_store(redis_url(request)), open_store(redis_url(request))
    try:
        assert isinstance(first, RedisStore) and isinstance(second, RedisStore)
        assert first.uses_functions and second.uses_functions
        library = FUNCTIONS["submit"].rsplit("_submit", 1)[0]
        libraries = [dict(zip(entry[::2], entry[1::2], strict=True)) for entry in server.function_list(library)]
        listed = [lib for lib in libraries if lib[b"library_name"] == library.encode()]
        assert len(listed) == 1 and len(listed[0][b"functions"]) == len(FUNCTIONS), "one library, every call in it"
        calls = server.info("commandstats").get("cmdstat_fcall", {}).get("calls", 0)
        cycle(first)
        assert server.info("commandstats")["cmdstat_fcall"]["calls"] > calls
    finally:
        first.close()
        second.close()
        server.close()


def test_a_library_the_server_lost_is_loaded_again_and_the_call_runs_once(request: pytest.FixtureRequest) -> None:
    """As after a restart without persistence, or FUNCTION FLUSH: the next call finds no function, loads the
    library and runs (once: the call that found nothing had not run)."""
    server = redis.Redis.from_url(request.getfixturevalue("redis_server"))
    store = open_store(redis_url(request))
    try:
        assert isinstance(store, RedisStore)
        submit(store, utcnow())
        server.function_delete(FUNCTIONS["submit"].rsplit("_submit", 1)[0])
        submit(store, utcnow())
        assert store.counts().by_status == {"pending": 2}
    finally:
        store.close()
        server.close()


def test_a_server_that_refuses_function_libraries_gets_the_calls_as_scripts(request: pytest.FixtureRequest) -> None:
    """A Redis user whose ACL denies FUNCTION (as Redis 6 has none): the store runs each call as a script."""
    server_url = request.getfixturevalue("redis_server")
    server = redis.Redis.from_url(server_url)
    user, password = f"jhtest-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    server.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                       commands=["+@all", "-function"])
    request.addfinalizer(lambda: (server.acl_deluser(user), server.close()))
    parts = urlsplit(redis_url(request))
    store = open_store(urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}")))
    try:
        assert isinstance(store, RedisStore) and not store.uses_functions
        cycle(store)
        assert store.counts().by_status == {"completed": 1}
    finally:
        store.close()


def test_a_call_that_fails_part_way_still_counts_the_moves_it_made(request: pytest.FixtureRequest) -> None:
    """Redis keeps what a call wrote before it failed; the status counters, summed over the call and written at
    its end, are written then too, so they still match the jobs. Here the second of two finishes asks for a
    move the state machine has not got (Python checks outcomes first; the call below goes around that check)."""
    store = open_store(redis_url(request))
    try:
        assert isinstance(store, RedisStore)
        first, second = submit(store, utcnow()), submit(store, utcnow())
        store.claim(ClaimRequest("w", ["default"], 2, 30), utcnow())
        now_ts = utcnow().timestamp()
        items = [finish_item(first.job_id, "w", 1, Outcome(JobStatus.COMPLETED, result=1), now_ts),
                 {**finish_item(second.job_id, "w", 1, Outcome(JobStatus.COMPLETED, result=1), now_ts),
                  "status": "waiting"}]
        with pytest.raises(redis.ResponseError, match="no transition of the state machine does that"):
            store._call("finish", {"now": repr(now_ts), "items": items, "claim": None, "error_limit": 20,
                                   "progress_limit": 50})
        statuses = {job_id: store.get(job_id).status.value for job_id in (first.job_id, second.job_id)}  # type: ignore[union-attr]
        assert statuses == {first.job_id: "completed", second.job_id: "running"}
        assert store.counts().by_status == {"completed": 1, "running": 1}
    finally:
        store.close()


def test_redis_url_setting_alone_opens_the_redis_store(request: pytest.FixtureRequest,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBHANDLE_STORE", raising=False)
    monkeypatch.setenv("REDIS_URL", redis_url(request))
    q = JobQueue()
    try:
        assert q.store.kind == "redis"
        assert q.stats()["queue_type"] == "redis"
    finally:
        q.close()


def test_a_lost_redis_server_is_a_clear_error_and_an_api_503(tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: no private server to stop")
    with private_redis_server(binary, tmp_path) as (url, _, proc):
        q = JobQueue(url)
        try:
            job = q.submit("echo")
            with TestClient(create_app(q)) as client:
                assert client.get(f"/api/v1/jobs/status/{job.job_id}").status_code == 200
                proc.kill()
                proc.wait(10)
                with pytest.raises(StoreUnavailableError, match="the Redis store is unreachable"):
                    q.get(job.job_id)
                with pytest.raises(StoreUnavailableError):
                    q.stats()
                response = client.get(f"/api/v1/jobs/status/{job.job_id}")
                assert response.status_code == 503
                assert response.json()["error"] == "StoreUnavailableError"
        finally:
            q.close()


def test_a_worker_rides_out_a_redis_restart(tmp_path: Path, registry: HandlerRegistry, settings: Settings,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """A Redis restart (or failover) pauses workers instead of stopping them: they try again until the
    server answers, then go on with the jobs it kept."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: no private server to restart")
    registry.register("echo", lambda ctx, n: {"n": n})
    with private_redis_server(binary, tmp_path, persistent=True) as (url, port, proc):
        q = JobQueue(url, registry=registry, settings=settings)
        try:
            with q.worker(concurrency=2) as worker:
                assert q.wait(q.submit("echo", {"n": 1}).job_id, timeout=10).result == {"n": 1}
                proc.kill()
                proc.wait(10)
                wait_until(lambda: "the Redis store is unreachable" in caplog.text, timeout=10,
                           message="the worker to meet the outage")
                with private_redis_server(binary, tmp_path, port=port, persistent=True):
                    job = q.submit("echo", {"n": 2})
                    done = q.wait(job.job_id, timeout=20)
                    assert (done.status, done.result) == (JobStatus.COMPLETED, {"n": 2})
                    assert worker.failure is None and not worker.stopping
                    assert q.stats()["completed_jobs"] == 2  # the first job survived the restart
        finally:
            q.close()


LAYOUT_1 = Path(__file__).parent / "data" / "redis_layout_1.json"


def load_layout_1(client: redis.Redis, prefix: str) -> None:
    """Write tests/unit/data/redis_layout_1.json's keys under ``prefix`` (as 0.1.0 wrote them)."""
    for name, (kind, value) in json.loads(LAYOUT_1.read_text())["keys"].items():
        key = prefix + name
        if kind == "string":
            client.set(key, value)
        elif kind == "hash":
            client.hset(key, mapping=value)
        elif kind == "list":
            client.rpush(key, *value)
        elif kind == "set":
            client.sadd(key, *value)
        else:
            client.zadd(key, {member: score for member, score in value})


def test_a_store_of_the_last_release_before_layout_versions_is_upgraded(request: pytest.FixtureRequest) -> None:
    """0.1.0's keys (tests/unit/data) are brought to this layout at open: idempotency keys per user, waiting
    users scored by their turn, the search indexes built. The round robin goes on where it was; nothing stored is
    lost."""
    url = redis_url(request)
    location = parse_redis_url(url)
    client = redis.Redis.from_url(location.url, decode_responses=True)
    try:
        load_layout_1(client, location.prefix)
        store = open_store(url)
        try:
            assert client.get(f"{location.prefix}:layout") == "3"
            every = store.list_jobs(JobQuery(limit=100))
            for job in every:  # the search indexes hold the jobs stored before they existed
                assert job.job_id in {j.job_id for j in store.list_jobs(JobQuery(search=job.job_id[:6]))}
                assert job.job_id in {j.job_id for j in store.list_jobs(JobQuery(search=job.user_id[:3]))}
            now = utcnow()
            order = [job.user_id for job in store.claim(ClaimRequest("w1", ["default"], 5, 30), now)]
            assert order == ["alice", "carol", "erin", "bob", "alice"], "bob was served at level 10 already"
            [erin] = store.list_jobs(JobQuery(user_id="erin"))
            assert store.submit([Job(job_type="echo", user_id="erin", idempotency_key="order-1")],
                                now)[0].job_id == erin.job_id, "a stored key still finds its job"
            assert store.submit([Job(job_type="echo", user_id="frank", idempotency_key="order-1")],
                                now)[0].user_id == "frank"
            assert {s: n for s, n in store.counts().by_status.items() if n} == \
                {"running": 6, "completed": 1, "pending": 1}
        finally:
            store.close()
    finally:
        client.close()


def test_a_store_of_a_newer_layout_is_refused(request: pytest.FixtureRequest) -> None:
    url = redis_url(request)
    open_store(url).close()
    location = parse_redis_url(url)
    client = redis.Redis.from_url(location.url)
    try:
        client.set(f"{location.prefix}:layout", 99)
        with pytest.raises(StoreSchemaError, match="newer jobhandle"):
            open_store(url)
    finally:
        client.close()


def test_a_schedule_change_that_keeps_losing_gives_up_with_a_clear_error(request: pytest.FixtureRequest,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Pause, resume and delete are compare-and-set: each try reads the schedule, then applies only if nobody
    changed it since. Another writer changing it after every read (here: its generation bumped in Redis right
    after each read) must not keep the caller looping forever."""
    url = redis_url(request)
    queue = JobQueue(url, registry=HandlerRegistry())
    try:
        schedule = queue.schedule("tick", "* * * * *")
        store = queue.store
        read = store._read_schedule  # type: ignore[attr-defined]
        key = f"{parse_redis_url(url).prefix}:schedule:{schedule.schedule_id}"

        def read_then_lose(schedule_id: str):  # type: ignore[no-untyped-def]
            found = read(schedule_id)
            store._redis.hincrby(key, "generation", 1)  # type: ignore[attr-defined]
            return found

        monkeypatch.setattr(store, "_read_schedule", read_then_lose)
        with pytest.raises(StoreConflictError, match="changed 20 times"):
            queue.pause_schedule(schedule.schedule_id)
    finally:
        queue.close()


def test_a_list_that_would_read_too_many_jobs_is_refused_not_run(request: pytest.FixtureRequest,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Sorted by another field than created_at every matching job is read (to sort them), inside one script
    that holds Redis for every client: past SORT_SCAN_LIMIT jobs (here 20) the list is refused with a message
    that says what to do instead; so is an offset that deep, and a walk for a filter no index serves that has
    read that many. Sorted by creation time, narrowed by an index, it runs at any size."""
    from jobhandle.stores.redis import store as redis_store

    monkeypatch.setattr(redis_store, "SORT_SCAN_LIMIT", 20)
    store = open_store(redis_url(request))
    try:
        now = utcnow()
        store.submit([Job(job_type="echo", user_id="alice" if n < 5 else "bob") for n in range(30)], now)
        with pytest.raises(InvalidParameterError, match="more than 20 jobs .* sorted by progress"):
            store.list_jobs(JobQuery(sort="-progress"))
        with pytest.raises(InvalidParameterError, match="25 deep"):
            store.list_jobs(JobQuery(offset=25, limit=5))
        with pytest.raises(InvalidParameterError, match="a filter no index serves"):
            store.list_jobs(JobQuery(job_type="rare", limit=5))  # 30 candidates walked, none matches
        assert len(store.list_jobs(JobQuery(sort="-progress", user_id="alice"))) == 5, "a narrow filter is fine"
        assert len(store.list_jobs(JobQuery(sort="-created_at", limit=30))) == 30
    finally:
        store.close()
