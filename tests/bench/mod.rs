//! Shared pieces of the benchmark programs in `tests/benches`: seeded data,
//! timing, command-line options, the figure table and its JSON file, and
//! peak-memory readings. Each submodule measures one thing next to its
//! same-run baseline: `ingest` (SDK vs driver), `load` (cold load vs raw
//! RowBinary fetch), `knn` (kernel vs GEMM ceiling and memory-read floor) and
//! `analyses` (seconds and peak memory of each analysis).

pub mod analyses;
pub mod ingest;
pub mod knn;
pub mod load;
mod report;

use std::time::{Duration, Instant};

pub use self::report::{Figure, Ratio, Report};

/// A deterministic vector of `dimension` values in [-0.5, 0.5) for `seed`
/// (xorshift64): the data of the load, refresh and analysis benchmarks.
pub fn seeded_vector(seed: u64, dimension: usize) -> Vec<f32> {
    let mut vector = vec![0.0; dimension];
    fill_seeded(seed, &mut vector);
    vector
}

/// Writes the values of [`seeded_vector`] into `out`.
pub fn fill_seeded(seed: u64, out: &mut [f32]) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for value in out {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *value = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
    }
}

/// The shortest of `runs` timings of `body`.
pub fn best_of(runs: usize, mut body: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            body();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// The median of `runs` timings of `body`, which is given the run's index.
pub fn median_of(runs: usize, mut body: impl FnMut(usize)) -> Duration {
    median(
        (0..runs)
            .map(|run| {
                let start = Instant::now();
                body(run);
                start.elapsed()
            })
            .collect(),
    )
}

/// The median of `times` (zero when empty).
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// The value after `--name` on the command line.
pub fn argument(name: &str) -> Option<String> {
    let arguments: Vec<String> = std::env::args().collect();
    arguments
        .iter()
        .position(|argument| argument == name)
        .and_then(|position| arguments.get(position + 1).cloned())
}

/// Whether `--name` is on the command line.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|argument| argument == name)
}

/// A size as keys spell it: `100k`, `1m`, `2500`.
pub fn size_tag(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}m", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets the peak resident size (`VmHWM`) of process `pid` to its current
/// resident size (Linux `clear_refs` value 5). False when the kernel refuses.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}
