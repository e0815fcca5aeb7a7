"""``jobhandle serve`` as a real process: serves the API with an in-process worker, stops on SIGTERM, refuses
bad API keys before listening."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from helpers import wait_until

HANDLERS = Path(__file__).with_name("sse_handlers.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_runs_jobs_submitted_over_http_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobhandle", "serve", "--port", str(port), "--workers", "1", "--app", str(HANDLERS),
         "--store", f"sqlite:///{tmp_path}/jobs.db", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/docs" in banner and "1 in-process worker slot," in banner
        assert f"dashboard http://127.0.0.1:{port}/," in banner
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/api/v1/jobs/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, 20, "the server answering")
        job = httpx.post(f"{base}/api/v1/jobs", json={"job_type": "stepper", "parameters": {"steps": 2, "pause": 0}})
        assert job.status_code == 201
        done = httpx.get(f"{base}/api/v1/jobs/status/{job.json()['job_id']}/poll",
                         params={"current_status": "pending"}, timeout=40)
        final = done.json()
        if final["status"] != "completed":  # the poll may have returned at "running"
            final = httpx.get(f"{base}/api/v1/jobs/status/{final['job_id']}/poll",
                              params={"current_status": "running"}, timeout=40).json()
        assert final["status"] == "completed" and final["result"] == {"steps": 2}
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(30)
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()


def test_serve_refuses_bad_api_keys_before_listening(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jobhandle", "serve", "--port", str(free_port()), "--store",
         f"sqlite:///{tmp_path}/jobs.db"],
        env={**os.environ, "JOBHANDLE_API_KEYS": "key-without-user"}, capture_output=True, text=True, timeout=30)

    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: JOBHANDLE_API_KEYS entry 1:")
