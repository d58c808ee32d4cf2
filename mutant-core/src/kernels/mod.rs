//! In-memory analysis kernels (kNN, scores, projections) on faer; they never do IO.
