//! The quality of Mutant's default answers (issue 11), as figures: a program
//! (`harness = false`) that prints a table.
//!
//! What it measures, through the same service the server runs (in-memory
//! store), on public data shipped in `mutant-core/testdata`:
//!
//! 1. `near_duplicates` with no parameters on digits plus 300 noisy copies
//!    (noise 0.05 to 0.5 of the source's nearest-neighbour distance) and 20
//!    exact copies: precision and recall, next to the best single distance
//!    threshold chosen knowing the truth; on digits as shipped and with
//!    classes 0-4 spread three times wider (dense and sparse regions); and
//!    across datasets (copies of a 70% reference planted in the 30% target).
//! 2. `mislabel` with no parameters on digits and the breast cancer set with
//!    10% of labels flipped: the verdict's precision and recall, the
//!    ranking's AUROC and average precision; then the ranking of each method
//!    and k a user could choose instead.
//! 3. `select` with only `n` = 50 and 100 on digits (5 labeled per class,
//!    the pool predicted by 1-NN on them, 30% held out): 1-NN test accuracy
//!    after labeling the picks, against 10 random draws.
//!
//! Seeds: 11, 12, 13 (duplicates), 2024, 2025, 2026 (mislabel), 1 to 8
//! (select). Command: `cargo bench -p mutant-tests --bench quality`
//! (about two minutes).

#![allow(clippy::print_stdout)]

use mutant_tests::quality::{data, duplicates, mislabel, select};

#[tokio::main]
async fn main() {
    println!("# near_duplicates, no parameters (P = precision, R = recall)");
    println!("| case | seed | automatic P / R | best threshold | its P / R |");
    println!("| --- | --- | --- | --- | --- |");
    for seed in [11, 12, 13] {
        for (case, figures) in [
            ("digits", duplicates::within_one_dataset(seed, false).await),
            (
                "digits, dense and sparse",
                duplicates::within_one_dataset(seed, true).await,
            ),
            (
                "leakage across datasets",
                duplicates::across_datasets(seed).await,
            ),
        ] {
            println!(
                "| {case} | {seed} | {:.3} / {:.3} | {:.2} | {:.3} / {:.3} |",
                figures.automatic.precision,
                figures.automatic.recall,
                figures.threshold,
                figures.best_threshold.precision,
                figures.best_threshold.recall
            );
        }
    }
    println!(
        "pairs on clean digits: {}",
        duplicates::on_clean_digits().await
    );

    println!("\n# mislabel, no parameters, 10% of labels flipped");
    println!("| data | seed | verdict P / R | flagged | AUROC | AP |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, set) in [
        ("digits", data::digits()),
        ("breast cancer", data::breast_cancer()),
    ] {
        for seed in [2024, 2025, 2026] {
            let figures = mislabel::with_defaults(&set, seed).await;
            println!(
                "| {name} | {seed} | {:.3} / {:.3} | {} | {:.4} | {:.4} |",
                figures.verdict.precision,
                figures.verdict.recall,
                figures.verdict.n_answers,
                figures.auroc,
                figures.average_precision
            );
        }
    }
    println!("\n# mislabel ranking by method, votes and k, seed 2024");
    println!("| data | method | votes | k | AUROC | AP |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, set) in [
        ("digits", data::digits()),
        ("breast cancer", data::breast_cancer()),
    ] {
        for figure in mislabel::compare_methods(&set, 2024, &[5, 10, 20, 30, 50]) {
            println!(
                "| {name} | {:?} | {:?} | {} | {:.4} | {:.4} |",
                figure.method, figure.votes, figure.k, figure.auroc, figure.average_precision
            );
        }
    }

    println!("\n# select with only n: 1-NN test accuracy after labeling the picks");
    println!("| seed | n | reference only | select | random mean +- sd | margin (sd) | strategy |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for seed in 1..=8 {
        for n in [50, 100] {
            let figures = select::against_random(seed, n).await;
            println!(
                "| {seed} | {n} | {:.4} | {:.4} | {:.4} +- {:.4} | {:+.1} | {} |",
                figures.reference_only,
                figures.selected,
                figures.random_mean(),
                figures.random_deviation(),
                figures.margin_in_deviations(),
                figures.strategy
            );
        }
    }
}
