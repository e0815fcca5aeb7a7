"""Property-based check of the whole API against its own OpenAPI schema (schemathesis, in-process ASGI):
no generated request, valid or not, gets a 5xx, and every response conforms to the documented schema.

Bounded on purpose (a few examples per operation): a quick guard in every run, not an exhaustive search.
The streaming endpoints (SSE, long-poll) are left out: they hold the connection open by design and have
their own tests over real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from jobhandle import HandlerRegistry, JobQueue
from jobhandle.api import create_app

STREAMING = r"/(stream|poll|events)$"

# One app for the module: schemathesis reads its schema when the tests are collected.
_queue = JobQueue("memory://", registry=HandlerRegistry())
_queue.submit("seeded")  # something for the lists and counts to return
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_queue)).exclude(path_regex=STREAMING)


@pytest.fixture(scope="module", autouse=True)
def _close_queue() -> Iterator[None]:
    yield
    _queue.close()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_responses_match_the_schema(case: schemathesis.Case) -> None:
    # positive_data_acceptance is left out: a schema-valid request may still be refused with a documented 400
    # (an unknown priority name, a bad cron expression, a job id that is not a UUID, a dependency that does not
    # exist): what only jobhandle can judge is not in the schema.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
