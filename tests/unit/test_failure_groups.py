"""The failures page's grouping: the variable parts of an error message are masked, the rest must match."""

from __future__ import annotations

from datetime import timedelta

from jobhandle import JobStatus
from jobhandle.models import Job, utcnow
from jobhandle.web.failures import group_failures, signature


def test_numbers_ids_hex_and_quoted_values_are_masked() -> None:
    assert signature("timed out after 3.25 s") == signature("timed out after 41 s") == "timed out after <n> s"
    assert signature("job 3f2a9c1e-0b1d-4c2e-9f00-1234567890ab gone") == "job <id> gone"
    assert signature("bad pointer 0xdeadBEEF") == "bad pointer <hex>"
    assert signature("no file 'a.pdf'") == signature('no file "b.pdf"') == "no file '…'"
    assert signature("ValueError: x\nTraceback line 2") == "ValueError: x"
    assert signature(None) == signature("  ") == ""


def test_groups_count_first_and_last_seen_and_keep_types_apart() -> None:
    now = utcnow()

    def failed(job_type: str, error: str, minutes: int) -> Job:
        return Job(job_type=job_type, status=JobStatus.FAILED, error=error, error_type="E",
                   completed_at=now - timedelta(minutes=minutes))

    jobs = [failed("a", "E: took 1 s", 1), failed("a", "E: took 9 s", 5), failed("b", "E: took 1 s", 2),
            failed("a", "E: other", 3)]
    groups = group_failures(jobs)
    assert [(g.job_type, g.message, g.count) for g in groups] == [
        ("a", "E: took <n> s", 2), ("a", "E: other", 1), ("b", "E: took <n> s", 1)]
    top = groups[0]
    assert (top.first_seen, top.last_seen) == (now - timedelta(minutes=5), now - timedelta(minutes=1))
    assert top.sample is jobs[0] and top.job_ids == [jobs[0].job_id, jobs[1].job_id]
