"""deploy/: every file parses, and every jobhandle command line in it uses commands and options that exist.

No Docker engine or Kubernetes cluster runs here (docs/deployment.md says so): this is what can be checked."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import wait_until

from jobhandle.cli import app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def commands_in_yaml(doc: object) -> list[list[str]]:
    """Every list of strings, or string, under a command/args/test key that runs jobhandle."""
    found: list[list[str]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("command", "args", "test") and isinstance(value, list) and "jobhandle" in value:
                found.append([str(v) for v in value])
            else:
                found += commands_in_yaml(value)
    elif isinstance(doc, list):
        for item in doc:
            found += commands_in_yaml(item)
    return found


def yaml_documents() -> list[tuple[str, object]]:
    out = []
    for path in sorted(DEPLOY.rglob("*.yml")) + sorted(DEPLOY.rglob("*.yaml")):
        out += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text())]
    return out


def all_commands() -> list[tuple[str, list[str]]]:
    found = [(name, argv) for name, doc in yaml_documents() for argv in commands_in_yaml(doc)]
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read_string(unit.read_text())
        found.append((unit.name, shlex.split(parser["Service"]["ExecStart"])))
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    found += [("Dockerfile", json.loads(m)) for m in re.findall(r"^CMD (\[.*\])$", dockerfile, re.M)]
    return found


def test_the_files_are_there_and_parse() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*") if p.is_file()}
    assert {"Dockerfile", "docker-compose.yml", "systemd/jobhandle-api.service", "systemd/jobhandle-pool.service",
            "kubernetes/api.yaml", "kubernetes/workers.yaml"} <= names
    kinds = [doc.get("kind") for _, doc in yaml_documents() if isinstance(doc, dict) and "kind" in doc]
    assert kinds == ["Deployment", "Service", "ScaledObject", "Deployment"]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"redis", "api", "workers"}


def jobhandle_args(argv: list[str]) -> list[str]:
    """The arguments after the jobhandle executable (a bare name, or a path ending in it)."""
    return argv[[i for i, a in enumerate(argv) if a.endswith("jobhandle")][0] + 1:]


def test_there_are_commands_to_check() -> None:
    assert {jobhandle_args(argv)[0] for _, argv in all_commands()} >= {"serve", "pool", "health"}


@pytest.mark.parametrize(("where", "argv"), all_commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_each_command_and_option_exists(where: str, argv: list[str]) -> None:
    args = jobhandle_args(argv)
    command = args[0]
    help_text = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert help_text.exit_code == 0, f"{where}: no command {command!r}"
    for option in (a for a in args if a.startswith("--")):
        assert re.search(rf"{re.escape(option)}\b", help_text.stdout), f"{where}: {command} has no {option}"


def test_stop_timeouts_leave_room_for_the_drain() -> None:
    """The pool drains within --grace plus 10 s: each service manager must wait longer than that."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    workers = compose["services"]["workers"]
    grace = float(workers["command"][workers["command"].index("--grace") + 1])
    assert float(workers["stop_grace_period"].rstrip("s")) > grace + 10
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((DEPLOY / "systemd/jobhandle-pool.service").read_text())
    assert float(unit["Service"]["TimeoutStopSec"]) > float(shlex.split(unit["Service"]["ExecStart"])[-1]) + 10
    [pods] = [doc for _, doc in yaml_documents() if isinstance(doc, dict) and doc.get("kind") == "Deployment"
              and doc["metadata"]["name"] == "jobhandle-workers"]
    spec = pods["spec"]["template"]["spec"]
    args = spec["containers"][0]["args"]
    assert spec["terminationGracePeriodSeconds"] > float(args[args.index("--grace") + 1]) + 10


def test_the_grafana_dashboard_and_keda_query_name_metrics_the_api_serves(api_metric_names: set[str]) -> None:
    dashboard = json.loads((DEPLOY / "grafana/jobhandle.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    keda = [doc for _, doc in yaml_documents() if isinstance(doc, dict) and doc.get("kind") == "ScaledObject"]
    exprs += [t["metadata"]["query"] for t in keda[0]["spec"]["triggers"]]
    used = {name for e in exprs for name in re.findall(r"jobhandle_[a-z_]+", e)}
    assert used and used <= api_metric_names, used - api_metric_names


@pytest.fixture
def api_metric_names(tmp_path: Path) -> set[str]:
    """Every sample name GET /metrics serves, with one job run so that the histograms have samples."""
    from fastapi.testclient import TestClient
    from prometheus_client.parser import text_string_to_metric_families

    from jobhandle import HandlerRegistry, JobQueue, Settings
    from jobhandle.api import create_app

    registry = HandlerRegistry()
    runs: list[int] = []

    def once_flaky(ctx: object) -> int:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("the first attempt fails")
        return 1

    registry.register("flaky", once_flaky)
    with JobQueue(f"sqlite:///{tmp_path}/jobs.db", registry=registry, settings=Settings(heartbeat_interval=0.2)) \
            as q, TestClient(create_app(q)) as api:
        job = q.submit("flaky", max_retries=1, retry_delay=0)
        with q.worker(concurrency=1):
            q.wait(job.job_id, 10)

        def served() -> set[str]:
            text = api.get("/metrics").text
            names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
            return names if {"jobhandle_job_wait_seconds_bucket", "jobhandle_jobs_finished_total",
                             "jobhandle_jobs_retried_total"} <= names else set()

        return wait_until(served, 10, "the metrics of the job (the hub hands changes over on its own thread)")
