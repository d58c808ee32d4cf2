//! The public data sets the quality measurements use, shipped in
//! `mutant-core/testdata` by `scripts/make_testdata.sh`, and the seeded
//! randomness that plants faults in them.

use mutant_core::kernels::SplitMix64;
use mutant_core::model::Record;

/// A labeled data set: one row of `dimension` values per record.
#[derive(Debug, Clone)]
pub struct LabeledData {
    /// Values per record.
    pub dimension: usize,
    /// Row-major vectors.
    pub vectors: Vec<f32>,
    /// Each record's class.
    pub labels: Vec<u32>,
}

impl LabeledData {
    fn from_csv(text: &str) -> Self {
        let mut vectors = Vec::new();
        let mut labels = Vec::new();
        for line in text.lines() {
            let mut fields = line.split(',');
            let label = fields.next().and_then(|field| field.parse().ok());
            labels.push(label.expect("every test data line starts with its class"));
            vectors.extend(
                fields.map(|field| field.parse::<f32>().expect("test data values are numbers")),
            );
        }
        LabeledData {
            dimension: vectors.len() / labels.len().max(1),
            vectors,
            labels,
        }
    }

    /// How many records.
    pub fn n_records(&self) -> usize {
        self.labels.len()
    }

    /// Record `row`'s vector.
    pub fn row(&self, row: usize) -> &[f32] {
        &self.vectors[row * self.dimension..(row + 1) * self.dimension]
    }

    /// How many classes (labels are 0..n).
    pub fn n_classes(&self) -> usize {
        self.labels
            .iter()
            .max()
            .map_or(0, |&label| label as usize + 1)
    }
}

/// scikit-learn's digits: 1,797 8x8 images (64 values 0..16), 10 classes.
pub fn digits() -> LabeledData {
    LabeledData::from_csv(include_str!("../../mutant-core/testdata/digits.csv"))
}

/// scikit-learn's Wisconsin breast cancer set: 569 records of 30
/// standardised features, 2 classes.
pub fn breast_cancer() -> LabeledData {
    LabeledData::from_csv(include_str!("../../mutant-core/testdata/breast_cancer.csv"))
}

/// The record `id` with `vector` and, when given, a label and a prediction.
pub fn record(id: String, vector: &[f32], label: Option<u32>, prediction: Option<u32>) -> Record {
    let mut record = Record::new(id, vector.to_vec());
    record.label = label.map(|label| label.to_string());
    record.prediction = prediction.map(|prediction| prediction.to_string());
    record
}

/// Seeded randomness for planting faults.
pub struct Random(SplitMix64);

impl Random {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Random(SplitMix64::new(seed))
    }

    /// Uniform in `[low, high)`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.0.next_f64()
    }

    /// Uniform in `0..bound`.
    pub fn below(&mut self, bound: usize) -> usize {
        self.0.below(bound)
    }

    /// `count` distinct values of `0..population`.
    pub fn sample(&mut self, population: usize, count: usize) -> Vec<usize> {
        self.0.sample_indices(population, count)
    }

    /// Shuffles `items`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        self.0.shuffle(items);
    }

    /// A uniformly random direction: a unit vector of `dimension` values
    /// (normal deviates by Box-Muller, normalised).
    pub fn direction(&mut self, dimension: usize) -> Vec<f32> {
        let mut vector: Vec<f64> = (0..dimension)
            .map(|_| {
                let radius = (-2.0 * (1.0 - self.0.next_f64()).ln()).sqrt();
                radius * (std::f64::consts::TAU * self.0.next_f64()).cos()
            })
            .collect();
        let norm = vector.iter().map(|value| value * value).sum::<f64>().sqrt();
        for value in &mut vector {
            *value /= norm.max(f64::MIN_POSITIVE);
        }
        vector.into_iter().map(|value| value as f32).collect()
    }
}

/// Each record's distance to its nearest other record (brute force).
pub fn nearest_distances(data: &LabeledData) -> Vec<f32> {
    (0..data.n_records())
        .map(|row| {
            (0..data.n_records())
                .filter(|&other| other != row)
                .map(|other| l2(data.row(row), data.row(other)))
                .fold(f32::INFINITY, f32::min)
        })
        .collect()
}

/// The Euclidean distance.
pub fn l2(left: &[f32], right: &[f32]) -> f32 {
    left.iter()
        .zip(right)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f32>()
        .sqrt()
}
