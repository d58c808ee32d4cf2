"""Fixtures of the SDK's test suite: a real ``mutant-server`` process per test,
on a free port and its own ClickHouse database, in front of the ClickHouse
that ``scripts/clickhouse.sh`` starts.

The suite fails (never skips) when ClickHouse does not answer or the server
binary is missing, with a message saying how to fix it:

* ``MUTANT_CLICKHOUSE_URL``: the ClickHouse to use (default
  ``http://127.0.0.1:8123``; ``scripts/clickhouse.sh start`` prints one);
* ``MUTANT_SERVER_BINARY``: the ``mutant-server`` to run (default
  ``target/debug/mutant-server`` of the repository, built by
  ``cargo build -p mutant-server``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, Optional

import pytest

import mutant

REPOSITORY = Path(__file__).resolve().parents[2]
CLICKHOUSE_URL = os.environ.get("MUTANT_CLICKHOUSE_URL", "http://127.0.0.1:8123").rstrip("/")
SERVER_BINARY = Path(
    os.environ.get("MUTANT_SERVER_BINARY", REPOSITORY / "target" / "debug" / "mutant-server")
)


def clickhouse(statement: str) -> str:
    """Runs one statement on the test ClickHouse and returns its answer."""
    request = urllib.request.Request(CLICKHOUSE_URL + "/", data=statement.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read().decode()


def _check_prerequisites() -> Optional[str]:
    """What is missing for the suite to run, or None."""
    try:
        clickhouse("SELECT 1")
    except (urllib.error.URLError, OSError) as error:
        return (
            f"ClickHouse does not answer at {CLICKHOUSE_URL} ({error}); start one with "
            "`scripts/clickhouse.sh start` and export MUTANT_CLICKHOUSE_URL to the URL it prints"
        )
    if not SERVER_BINARY.is_file():
        return (
            f"the server binary {SERVER_BINARY} does not exist; build it with "
            "`cargo build -p mutant-server`, or point MUTANT_SERVER_BINARY at one"
        )
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """A real ``mutant-server`` on ``127.0.0.1:port`` owning ``database``."""

    def __init__(self, database: str, env: Optional[Dict[str, str]] = None) -> None:
        self.database = database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = dict(env or {})
        self.log_path = Path(tempfile.gettempdir()) / f"{database}.{os.getpid()}.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "ServerProcess":
        """Starts the server (on the same port as before, after a stop) and
        waits until it answers."""
        env = dict(os.environ)
        env.update(
            MUTANT_LISTEN=f"127.0.0.1:{self.port}",
            MUTANT_CLICKHOUSE_URL=CLICKHOUSE_URL,
            MUTANT_DATABASE=self.database,
            RUST_LOG=os.environ.get("MUTANT_TEST_SERVER_LOG", "warn"),
        )
        env.update(self.extra_env)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(SERVER_BINARY)], env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"mutant-server exited with {self.process.returncode} during start-up; "
                    f"its log ({self.log_path}):\n{self.log_path.read_text()[-2000:]}",
                    pytrace=False,
                )
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.kill()
        pytest.fail(
            f"mutant-server did not answer on {self.url} within 60 s; its log is {self.log_path}",
            pytrace=False,
        )

    def kill(self) -> None:
        """Kills the server at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None


def database_name(test_name: str) -> str:
    return "mutant_py_" + re.sub(r"[^A-Za-z0-9_]", "_", test_name)[:80]


@pytest.fixture(scope="session", autouse=True)
def prerequisites() -> None:
    missing = _check_prerequisites()
    if missing is not None:
        pytest.fail(missing, pytrace=False)


@pytest.fixture
def start_server(request: pytest.FixtureRequest) -> Iterator:
    """Starts servers for the test: ``start_server()`` on the test's own
    database, ``start_server(env={...})`` with extra settings. All are killed
    and the database dropped when the test ends."""
    database = database_name(request.node.name)
    clickhouse(f"DROP DATABASE IF EXISTS `{database}`")
    servers = []

    def start(env: Optional[Dict[str, str]] = None) -> ServerProcess:
        server = ServerProcess(database, env).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
    clickhouse(f"DROP DATABASE IF EXISTS `{database}`")


@pytest.fixture
def server(start_server) -> ServerProcess:
    """A server of the test's own."""
    return start_server()


@pytest.fixture
def client(server: ServerProcess) -> mutant.Client:
    """A client of the test's server; few retries, so failures show fast."""
    return mutant.Client(server.url, max_attempts=3, max_backoff=0.5)
