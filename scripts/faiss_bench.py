"""faiss-cpu at its best on the data of Mutant's kNN benchmark (tests/benches/knn.rs).

Regenerates the benchmark's data bit for bit (seeded, counter-based
splitmix64), then times exact IndexFlatL2 / IndexFlatIP: the 1,000-query batch
(k = 10) against 100,000 x 384, single-query latency, and the self-kNN graph
of 100,000 x 128 (k = 10 other rows, so 11 are asked for). Prints `result`
lines that scripts/faiss_bench.sh sets beside Mutant's.

Usage: python faiss_bench.py --threads 1,2 [--rows N] [--graph-rows N]
"""

import argparse
import statistics
import time

import faiss
import numpy as np

SEED = 42
DIMENSION = 384
N_QUERIES = 1000
GRAPH_DIMENSION = 128
K = 10
MASK = (1 << 64) - 1


def generate(stream, n_values):
    """Value i of `stream`: splitmix64 of a counter, as in tests/bench/knn.rs."""
    base = np.uint64((SEED + stream * 0x1000_0000_0000) & MASK)
    out = np.empty(n_values, dtype=np.float32)
    chunk = 1 << 22
    with np.errstate(over="ignore"):
        for start in range(0, n_values, chunk):
            index = np.arange(start + 1, min(start + chunk, n_values) + 1, dtype=np.uint64)
            mixed = base + index * np.uint64(0x9E3779B97F4A7C15)
            mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            mixed ^= mixed >> np.uint64(31)
            values = (mixed >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24) - np.float32(0.5)
            out[start : start + len(values)] = values
    return out


def best_of(runs, body):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--graph-rows", type=int, default=100_000)
    arguments = parser.parse_args()
    thread_counts = [int(value) for value in arguments.threads.split(",")]

    data = generate(0, arguments.rows * DIMENSION).reshape(arguments.rows, DIMENSION)
    queries = generate(1, N_QUERIES * DIMENSION).reshape(N_QUERIES, DIMENSION)
    print(f"# faiss {faiss.__version__}, {arguments.rows} x {DIMENSION}, {N_QUERIES} queries, k = {K}")
    for threads in thread_counts:
        faiss.omp_set_num_threads(threads)
        for name, index in (("batch", faiss.IndexFlatL2(DIMENSION)), ("batch_dot", faiss.IndexFlatIP(DIMENSION))):
            index.add(data)
            seconds = best_of(3, lambda: index.search(queries, K))
            print(f"faiss threads {threads}: {name} {seconds * 1e3:.1f} ms, {N_QUERIES / seconds:.0f} QPS")
            print(f"result faiss_{name} threads={threads} seconds={seconds:.6f}")
            if name == "batch":
                singles = []
                for run in range(21):
                    query = queries[run : run + 1]
                    start = time.perf_counter()
                    index.search(query, K)
                    singles.append(time.perf_counter() - start)
                single = statistics.median(singles)
                print(f"faiss threads {threads}: single query {single * 1e3:.2f} ms")
                print(f"result faiss_single threads={threads} seconds={single:.6f}")
    if arguments.graph_rows > 0:
        graph_data = generate(2, arguments.graph_rows * GRAPH_DIMENSION).reshape(arguments.graph_rows, GRAPH_DIMENSION)
        threads = max(thread_counts)
        faiss.omp_set_num_threads(threads)
        start = time.perf_counter()
        index = faiss.IndexFlatL2(GRAPH_DIMENSION)
        index.add(graph_data)
        _, neighbours = index.search(graph_data, K + 1)
        seconds = time.perf_counter() - start
        print(f"faiss threads {threads}: self-kNN graph {arguments.graph_rows} x {GRAPH_DIMENSION}: {seconds:.2f} s (first row's nearest other: {neighbours[0][1]})")
        print(f"result faiss_graph threads={threads} seconds={seconds:.6f}")


if __name__ == "__main__":
    main()
