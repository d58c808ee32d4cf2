"""The Python SDK against the Rust SDK, in one run (``scripts/py_bench.sh``
builds everything in release and runs this).

Two figures, each side measured alternately (which goes first flips every
round) against release servers on the same ClickHouse:

* upsert of ``--rows`` x ``--dimension`` float32 (seeded normal values,
  ids ``r000000``...): the Python side calls ``Dataset.upsert(ids, matrix)``
  from NumPy; the Rust side (``tests/benches/python_baseline.rs``) builds
  ``Record``s from the same matrix and streams them through a
  ``BatchWriter`` with the same batches (5,000 records, 32 MiB, 16 in
  flight). Each phase runs on a fresh server and database, after ClickHouse
  has finished its merges; rows/s, median over rounds. Target: Python >= 0.8x.
* a ``--queries``-query kNN (k = ``--k``) over a dataset of the same rows,
  cached on the server: the Python side calls ``Dataset.knn(queries)`` and
  gets ``ids`` and a float32 ``distances`` array; the Rust side calls
  ``Client::knn`` from the same matrix. ``--repeats`` requests per phase;
  seconds, median over all. Target: Python >= 0.9x the Rust side's speed.
"""

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from statistics import median

import numpy as np

import mutant

REPOSITORY = Path(__file__).resolve().parents[1]
CLICKHOUSE_URL = os.environ.get("MUTANT_CLICKHOUSE_URL", "http://127.0.0.1:8123").rstrip("/")
SERVER = Path(os.environ.get("CARGO_TARGET_DIR", REPOSITORY / "target")) / "release" / "mutant-server"


def clickhouse(statement: str) -> str:
    request = urllib.request.Request(CLICKHOUSE_URL + "/", data=statement.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.read().decode()


def wait_for_quiet_clickhouse() -> None:
    """Waits (at most 120 s) until ClickHouse runs no merge, so a phase does
    not pay for the parts an earlier one left behind."""
    for _ in range(1200):
        if clickhouse("SELECT count() FROM system.merges").strip() == "0":
            return
        time.sleep(0.1)


class Server:
    """A release mutant-server on a free port with its own database."""

    def __init__(self, database: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = database
        clickhouse(f"DROP DATABASE IF EXISTS `{database}`")
        env = dict(os.environ, MUTANT_LISTEN=f"127.0.0.1:{self.port}", MUTANT_DATABASE=database,
                   MUTANT_CLICKHOUSE_URL=CLICKHOUSE_URL, RUST_LOG="warn")
        self.process = subprocess.Popen([str(SERVER)], env=env, stdout=subprocess.DEVNULL)
        for _ in range(600):
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None:
                    sys.exit(f"py_bench: {SERVER} exited during start-up")
                time.sleep(0.05)
        sys.exit(f"py_bench: {SERVER} did not answer within 30 s")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        clickhouse(f"DROP DATABASE IF EXISTS `{self.database}`")


def rust_side(arguments) -> dict:
    """Runs the Rust side once and returns its JSON line."""
    command = ["cargo", "bench", "--quiet", "--locked", "-p", "mutant-tests",
               "--bench", "python_baseline", "--"] + [str(a) for a in arguments]
    output = subprocess.run(command, cwd=REPOSITORY, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def upsert_phase(side: str, vectors: np.ndarray, ids, data_path: Path, round_index: int) -> float:
    wait_for_quiet_clickhouse()
    server = Server("mutant_bench_py_upsert")
    name = f"upsert_{side}_{round_index}"
    try:
        if side == "rust":
            return rust_side(["--url", server.url, "--measure", "upsert", "--dataset", name,
                              "--data", data_path, "--rows", vectors.shape[0],
                              "--dimension", vectors.shape[1]])["rows_per_second"]
        client = mutant.Client(server.url)
        ds = client.create_dataset(name, dimension=vectors.shape[1])
        started = time.perf_counter()
        written = ds.upsert(ids, vectors)
        elapsed = time.perf_counter() - started
        assert written == len(ids)
        return len(ids) / elapsed
    finally:
        server.stop()


def knn_phase(side: str, server: Server, queries: np.ndarray, queries_path: Path, k: int,
              repeats: int) -> list:
    if side == "rust":
        return rust_side(["--url", server.url, "--measure", "knn", "--dataset", "knn",
                          "--data", queries_path, "--rows", queries.shape[0],
                          "--dimension", queries.shape[1], "--k", k, "--repeats", repeats])["seconds"]
    ds = mutant.Client(server.url).dataset("knn")
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        hits = ds.knn(queries, k=k)
        seconds.append(time.perf_counter() - started)
        assert hits.distances.shape == (queries.shape[0], k)
    return seconds


def cpu_flags() -> str:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    lines = dict(line.split(":", 1) for line in output.splitlines() if ":" in line)
    return f"{lines.get('Model name', '?').strip()}; flags: {lines.get('Flags', '?').strip()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    options = parser.parse_args()

    rng = np.random.default_rng(42)
    vectors = rng.normal(size=(options.rows, options.dimension)).astype(np.float32)
    queries = rng.normal(size=(options.queries, options.dimension)).astype(np.float32)
    ids = [f"r{index:06d}" for index in range(options.rows)]
    work = REPOSITORY / ".build" / "py-bench"
    work.mkdir(parents=True, exist_ok=True)
    data_path, queries_path = work / "vectors.f32", work / "queries.f32"
    vectors.astype("<f4").tofile(data_path)
    queries.astype("<f4").tofile(queries_path)
    print(f"Python SDK vs Rust SDK, {options.rows} x {options.dimension} float32, "
          f"ClickHouse {clickhouse('SELECT version()').strip()} at {CLICKHOUSE_URL}, "
          f"{options.rounds} alternating rounds; {platform.python_version()}, numpy {np.__version__}")
    print(f"CPU: {cpu_flags()}", flush=True)

    upsert = {"rust": [], "python": []}
    for round_index in range(options.rounds):
        order = ("rust", "python") if round_index % 2 == 0 else ("python", "rust")
        for side in order:
            rate = upsert_phase(side, vectors, ids, data_path, round_index)
            upsert[side].append(rate)
            print(f"  upsert round {round_index + 1} {side:>6}: {rate:>9.0f} rows/s", flush=True)

    wait_for_quiet_clickhouse()
    server = Server("mutant_bench_py_knn")
    knn = {"rust": [], "python": []}
    try:
        client = mutant.Client(server.url)
        client.create_dataset("knn", dimension=options.dimension).upsert(ids, vectors)
        client.dataset("knn").knn(queries[:1], k=options.k)  # loads the dataset into the cache
        wait_for_quiet_clickhouse()
        for round_index in range(options.rounds):
            order = ("rust", "python") if round_index % 2 == 0 else ("python", "rust")
            for side in order:
                seconds = knn_phase(side, server, queries, queries_path, options.k, options.repeats)
                knn[side].extend(seconds)
                print(f"  kNN round {round_index + 1} {side:>6}: "
                      + ", ".join(f"{s * 1000:.0f} ms" for s in seconds), flush=True)
    finally:
        server.stop()

    upsert_ratio = median(upsert["python"]) / median(upsert["rust"])
    knn_ratio = median(knn["rust"]) / median(knn["python"])
    print(f"upsert {options.rows} x {options.dimension}: Rust SDK {median(upsert['rust']):.0f} rows/s, "
          f"Python SDK {median(upsert['python']):.0f} rows/s, ratio {upsert_ratio:.2f}x (target >= 0.80x)")
    print(f"kNN {options.queries} queries, k = {options.k}: Rust SDK {median(knn['rust']) * 1000:.0f} ms, "
          f"Python SDK {median(knn['python']) * 1000:.0f} ms, speed ratio {knn_ratio:.2f}x (target >= 0.90x)")
    if options.json:
        options.json.write_text(json.dumps(
            {"upsert_rows_per_second": upsert, "knn_seconds": knn, "upsert_ratio": upsert_ratio,
             "knn_speed_ratio": knn_ratio, "cpu": cpu_flags(), "options": vars(options) | {"json": str(options.json)}},
            indent=2))


if __name__ == "__main__":
    main()
