"""The job model: the state machine table, status and priority parsing, times, ids, JSON checks."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jobhandle import InvalidParameterError, Job, JobPriority, JobStatus
from jobhandle.models import (
    ALL_STATUSES,
    CANCELLABLE,
    DUE_STATUSES,
    FINISH_TARGETS,
    MACHINE,
    RESTARTABLE,
    TERMINAL_STATUSES,
    TRANSITIONS,
    Dependency,
    JobMetrics,
    as_utc,
    can_transition,
    check_finish,
    check_json,
    check_move,
    clamp_progress,
    dumps_json,
    new_job_ids,
    parse_job_id,
    sources_of,
)

S = JobStatus

# -- the state machine -----------------------------------------------------------------------------------

def test_every_status_has_a_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(ALL_STATUSES)
    assert len(ALL_STATUSES) == 8
    assert all(targets <= set(ALL_STATUSES) for targets in TRANSITIONS.values())


def test_terminal_statuses_only_leave_by_restart() -> None:
    assert TERMINAL_STATUSES == {S.COMPLETED, S.FAILED, S.CANCELLED}
    assert TRANSITIONS[S.COMPLETED] == frozenset()
    assert TRANSITIONS[S.FAILED] == {S.PENDING}
    assert TRANSITIONS[S.CANCELLED] == {S.PENDING}


def test_the_documented_transitions() -> None:
    assert TRANSITIONS[S.WAITING] == {S.PENDING, S.SCHEDULED, S.CANCELLED}  # scheduled: its time is still ahead
    assert TRANSITIONS[S.SCHEDULED] == {S.PENDING, S.CANCELLED}
    assert TRANSITIONS[S.PENDING] == {S.RUNNING, S.CANCELLED}
    assert TRANSITIONS[S.RUNNING] == {S.COMPLETED, S.RETRYING, S.FAILED, S.CANCELLED, S.PENDING}  # pending: released
    assert TRANSITIONS[S.RETRYING] == {S.PENDING, S.CANCELLED}
    assert can_transition(S.PENDING, S.RUNNING)
    assert not can_transition(S.PENDING, S.COMPLETED)
    assert not can_transition(S.COMPLETED, S.PENDING)


def test_cancellable_is_every_status_that_is_not_terminal() -> None:
    assert set(CANCELLABLE) == set(ALL_STATUSES) - TERMINAL_STATUSES
    assert len(CANCELLABLE) == len(set(CANCELLABLE))


def test_restartable_is_failed_and_cancelled() -> None:
    assert set(RESTARTABLE) == {S.FAILED, S.CANCELLED}
    assert S.COMPLETED not in RESTARTABLE


def test_due_statuses_become_pending() -> None:
    assert set(DUE_STATUSES) == {S.SCHEDULED, S.RETRYING}
    assert all(can_transition(s, S.PENDING) for s in DUE_STATUSES)


def test_the_table_is_derived_from_the_named_transitions() -> None:
    assert {t.name for t in MACHINE} == {"promote", "resolve", "claim", "complete", "retry", "fail", "release",
                                         "cancel", "restart"}
    for status, targets in TRANSITIONS.items():
        assert targets == {target for t in MACHINE if status in t.sources for target in t.targets}
    assert FINISH_TARGETS == {S.COMPLETED, S.RETRYING, S.FAILED}
    with pytest.raises(InvalidParameterError, match="not pending"):
        check_finish(S.PENDING)
    with pytest.raises(RuntimeError, match="from completed to pending"):
        check_move("completed", "pending")
    check_move("running", "pending")


def test_sources_of() -> None:
    assert set(sources_of(S.RUNNING)) == {S.PENDING}
    assert set(sources_of(S.PENDING, among=TERMINAL_STATUSES)) == {S.FAILED, S.CANCELLED}
    assert sources_of(S.CANCELLED) == tuple(s for s in ALL_STATUSES if s in set(CANCELLABLE))


def test_is_terminal() -> None:
    assert [s for s in ALL_STATUSES if s.is_terminal] == [S.COMPLETED, S.FAILED, S.CANCELLED]
    assert Job("x", status=S.FAILED).is_terminal
    assert not Job("x").is_terminal


# -- JobStatus.parse -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("pending", S.PENDING), ("PENDING", S.PENDING), (" Completed ", S.COMPLETED), ("running", S.RUNNING),
    ("processing", S.RUNNING), ("PROCESSING", S.RUNNING), ("cancelled", S.CANCELLED), (S.FAILED, S.FAILED),
])
def test_status_parse(text: Any, expected: JobStatus) -> None:
    assert JobStatus.parse(text) is expected


def test_processing_is_an_alias_of_running() -> None:
    assert JobStatus.PROCESSING is JobStatus.RUNNING
    assert JobStatus.PROCESSING.value == "running"


@pytest.mark.parametrize("text", ["", "done", "canceled!", "is_terminal"])
def test_status_parse_rejects_unknown_names(text: str) -> None:
    with pytest.raises(InvalidParameterError) as error:
        JobStatus.parse(text)
    assert repr(text) in error.value.message
    assert "pending" in error.value.message and "cancelled" in error.value.message


# -- JobPriority.parse -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("low", -10), ("NORMAL", 0), ("High", 10), (" urgent ", 20), (JobPriority.HIGH, 10), (7, 7), (-3, -3),
    (0, 0), ("15", 15), ("-5", -5), (" 3 ", 3), (None, 0),
])
def test_priority_parse(value: Any, expected: int) -> None:
    parsed = JobPriority.parse(value)
    assert parsed == expected
    assert type(parsed) is int


def test_priority_names_are_ordered() -> None:
    assert JobPriority.LOW < JobPriority.NORMAL == 0 < JobPriority.HIGH < JobPriority.URGENT


@pytest.mark.parametrize("value", [True, False])
def test_priority_parse_rejects_bools(value: bool) -> None:
    with pytest.raises(InvalidParameterError, match=f"not {value}"):
        JobPriority.parse(value)


@pytest.mark.parametrize("value", ["extreme", "", "1.5", 1.5, [1], {"p": 1}])
def test_priority_parse_rejects_unknown_values_naming_them(value: Any) -> None:
    with pytest.raises(InvalidParameterError) as error:
        JobPriority.parse(value)
    assert repr(value) in error.value.message
    assert "URGENT" in error.value.message


# -- times -----------------------------------------------------------------------------------------------

def test_as_utc_takes_naive_input_as_utc() -> None:
    naive = datetime(2024, 5, 1, 12, 30)
    assert as_utc(naive) == datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    assert as_utc(naive).tzinfo is timezone.utc  # type: ignore[union-attr]


def test_as_utc_converts_offsets_and_iso_text() -> None:
    expected = datetime(2024, 5, 1, 10, 30, tzinfo=timezone.utc)
    plus_two = datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    for value in (plus_two, "2024-05-01T12:30:00+02:00", "2024-05-01T10:30:00Z", "2024-05-01T10:30:00"):
        converted = as_utc(value)
        assert converted == expected
        assert converted is not None and converted.utcoffset() == timedelta(0)
    assert as_utc(None) is None


@pytest.mark.parametrize("value", ["tomorrow", "2024-13-01T00:00:00", 1700000000])
def test_as_utc_rejects_what_is_not_a_date_time(value: Any) -> None:
    with pytest.raises(InvalidParameterError) as error:
        as_utc(value)
    assert str(value) in error.value.message or type(value).__name__ in error.value.message


def test_job_dict_has_iso_times_with_offsets() -> None:
    job = Job("x", created_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    data = job.to_dict()
    assert data["created_at"] == "2024-01-02T03:04:05+00:00"
    assert data["status"] == "pending" and data["scheduled_time"] is None
    assert set(data["metrics"]) >= {"execution_time_seconds", "items_processed", "total_items"}


def test_metrics_and_dependencies_carry_every_field_into_the_dict() -> None:
    metrics = JobMetrics(1.5, 2, 3, 0.25, 12.0)
    assert metrics.to_dict() == {f.name: getattr(metrics, f.name) for f in fields(JobMetrics)}
    assert JobMetrics.from_dict(metrics.to_dict()) == metrics
    dep = Dependency(str(uuid.uuid4()), "failure")
    assert Job("x", depends_on=[dep]).to_dict()["depends_on"] == [
        {f.name: getattr(dep, f.name) for f in fields(Dependency)}]


def test_new_jobs_get_uuid4_ids_and_utc_creation_times() -> None:
    job = Job("x")
    assert uuid.UUID(job.job_id).version == 4
    assert job.created_at.utcoffset() == timedelta(0)
    assert Job("x").job_id != job.job_id


# -- ids, dependencies, JSON, progress ------------------------------------------------------------------

def test_parse_job_id_canonicalises_uuids() -> None:
    value = uuid.uuid4()
    assert parse_job_id(str(value).upper()) == str(value)
    assert parse_job_id(value.hex) == str(value)


@pytest.mark.parametrize("value", ["", "abc", "1234", None, 42])
def test_parse_job_id_rejects_non_uuids(value: Any) -> None:
    with pytest.raises(InvalidParameterError, match="UUID"):
        parse_job_id(value)


def test_dependency_parsing() -> None:
    parent = str(uuid.uuid4())
    assert Dependency.parse(parent) == Dependency(parent, "success")
    assert Dependency.parse({"job_id": parent, "condition": "failure"}).condition == "failure"
    with pytest.raises(InvalidParameterError, match="condition"):
        Dependency.parse({"job_id": parent, "condition": "sometimes"})
    with pytest.raises(InvalidParameterError, match="UUID"):
        Dependency.parse("not-a-job")
    with pytest.raises(InvalidParameterError, match="depends_on"):
        Dependency.parse(42)  # type: ignore[arg-type]


def test_check_json() -> None:
    value = {"a": [1, 2.5, None, True, "x"], "b": {"c": {}}}
    assert check_json(value, "parameters") is value
    for bad in ({"x": object()}, {"x": float("nan")}, {"x": datetime.now()}):
        with pytest.raises(InvalidParameterError, match="parameters must be JSON"):
            check_json(bad, "parameters")


@pytest.mark.parametrize(("bad", "named"), [
    ({"x": {1, 2}}, "{1, 2} (of type set) has no JSON form"),
    ({"x": [1, {"deep": float("inf")}]}, "Out of range float"),
    ({"flat": float("nan")}, "Out of range float"),
    ({"x": {"y": {3: "z"}}}, "object keys must be strings, not 3"),
    ({1: "one"}, "object keys must be strings, not 1"),
])
def test_check_json_names_what_is_not_json(bad: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidParameterError, match="parameters must be JSON") as error:
        check_json(bad, "parameters")
    assert named in error.value.message


def test_check_json_refuses_circular_values_clearly() -> None:
    circular: dict[str, Any] = {"a": []}
    circular["a"].append(circular)
    with pytest.raises(InvalidParameterError, match="circular or nested too deeply"):
        check_json(circular, "parameters")


def test_dumps_json_is_compact_and_strict() -> None:
    value = {"a": [1, 2.5, None, True, "é"], "b": {"c": {}}, "d": 10**20}
    assert dumps_json(value) == '{"a":[1,2.5,null,true,"\\u00e9"],"b":{"c":{}},"d":100000000000000000000}'
    assert dumps_json("x") == '"x"'
    for bad in (float("nan"), {"when": datetime.now()}, object()):
        with pytest.raises((TypeError, ValueError)):
            dumps_json(bad)


def test_new_job_ids_are_distinct_version_4_uuids() -> None:
    ids = new_job_ids(2000)
    assert len(set(ids)) == 2000
    for job_id in ids:
        parsed = uuid.UUID(job_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, job_id)
    assert len({job_id[19] for job_id in ids}) == 4, "the variant digit takes each of 8, 9, a, b"
    assert new_job_ids(0) == []


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (0.5, 0.5), (1, 1.0), (1.7, 1.0), (-0.2, 0.0)])
def test_clamp_progress(value: float, expected: float) -> None:
    assert clamp_progress(value) == expected


@pytest.mark.parametrize("value", [True, float("nan"), "0.5", None])
def test_clamp_progress_rejects_non_numbers(value: Any) -> None:
    with pytest.raises(InvalidParameterError, match="progress"):
        clamp_progress(value)
