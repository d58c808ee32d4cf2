//! The figures of one benchmark run: a table on standard output, where every
//! figure stands next to its same-run baseline as a ratio, and one flat JSON
//! object with stable snake_case keys for tracking runs.

use serde_json::{Map, Value};

/// Figures gathered during a run, in the order they were measured.
#[derive(Debug, Default)]
pub struct Report {
    values: Map<String, Value>,
    rows: Vec<String>,
}

impl Report {
    /// A descriptive field (mode, date, machine): in the JSON only.
    pub fn note(&mut self, key: &str, value: impl Into<Value>) {
        self.values.insert(key.to_owned(), value.into());
    }

    /// A baseline figure: a table row of its own.
    pub fn baseline(&mut self, key: &str, value: f64, unit: &str) {
        self.values.insert(key.to_owned(), Value::from(value));
        self.rows
            .push(format!("{key:<44} {value:>14.4} {unit:<10} (baseline)"));
    }

    /// A figure next to the baseline `baseline_key`, with `ratio` stored as
    /// `ratio_key`; `meaning` says how the ratio reads ("SDK / driver").
    pub fn versus(&mut self, figure: Figure<'_>, baseline_key: &str, ratio: Ratio<'_>) {
        self.values
            .insert(figure.key.to_owned(), Value::from(figure.value));
        self.values
            .insert(ratio.key.to_owned(), Value::from(ratio.value));
        self.rows.push(format!(
            "{:<44} {:>14.4} {:<10} vs {baseline_key:<36} {:>8.3}x  {}",
            figure.key, figure.value, figure.unit, ratio.value, ratio.meaning
        ));
    }

    /// A line of explanation in the table.
    pub fn comment(&mut self, text: &str) {
        self.rows.push(format!("# {text}"));
    }

    /// The table, one row per figure.
    pub fn table(&self) -> String {
        self.rows.join("\n")
    }

    /// The JSON object, pretty-printed.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&Value::Object(self.values.clone()))
            .unwrap_or_else(|_| "{}".to_owned())
    }
}

/// A measured figure: its key, value and unit.
#[derive(Debug, Clone, Copy)]
pub struct Figure<'a> {
    /// The JSON key.
    pub key: &'a str,
    /// The value.
    pub value: f64,
    /// The unit shown in the table (`s`, `rows/s`, `MiB`).
    pub unit: &'a str,
}

/// A figure's ratio to its baseline.
#[derive(Debug, Clone, Copy)]
pub struct Ratio<'a> {
    /// The JSON key.
    pub key: &'a str,
    /// The value.
    pub value: f64,
    /// How it reads, e.g. "SDK / driver rows/s, target >= 0.8".
    pub meaning: &'a str,
}
