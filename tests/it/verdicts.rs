//! Issue 11: every kind gives each row a verdict by its documented rule and
//! its summary counts them, with what the kind adds; on digits with faults
//! planted, the verdicts flag the faults. Through the service over the
//! in-memory store, as `quality.rs`.

use mutant_core::service::Service;
use mutant_tests::quality::data::{self, Random, record};
use mutant_tests::quality::{analyze, create_dataset, memory_service};
use serde_json::{Value, json};

/// Digits shuffled (seed 3): the first 1,200 labeled are the reference;
/// the other 597 the target, their true class as the prediction except
/// every 10th (the next class), then 20 records of uniform noise. Returns
/// the ids of the wrong predictions and of the noise.
async fn planted(service: &Service) -> (Vec<String>, Vec<String>) {
    let digits = data::digits();
    let mut random = Random::new(3);
    let mut order: Vec<usize> = (0..digits.n_records()).collect();
    random.shuffle(&mut order);
    let reference = order[..1_200]
        .iter()
        .map(|&row| {
            record(
                format!("r{row}"),
                digits.row(row),
                Some(digits.labels[row]),
                None,
            )
        })
        .collect();
    create_dataset(service, "reference", 64, reference).await;
    let mut wrong = Vec::new();
    let mut target: Vec<_> = order[1_200..]
        .iter()
        .enumerate()
        .map(|(position, &row)| {
            let mut prediction = digits.labels[row];
            if position % 10 == 0 {
                prediction = (prediction + 1) % 10;
                wrong.push(format!("t{row}"));
            }
            record(format!("t{row}"), digits.row(row), None, Some(prediction))
        })
        .collect();
    let mut noise = Vec::new();
    for index in 0..20 {
        let vector: Vec<f32> = (0..64).map(|_| random.uniform(0.0, 16.0) as f32).collect();
        noise.push(format!("noise{index}"));
        target.push(record(
            format!("noise{index}"),
            &vector,
            None,
            Some(index % 10),
        ));
    }
    create_dataset(service, "target", 64, target).await;
    (wrong, noise)
}

/// The flagged ids, after checking every row's verdict and the summary's
/// counts.
fn flagged_ids(
    kind: &str,
    status_summary: &Value,
    rows: &[Value],
    n_records: usize,
) -> Vec<String> {
    assert!(
        rows.iter().all(|row| row["flagged"].is_boolean()),
        "{kind}: a row without a verdict"
    );
    let flagged: Vec<String> = rows
        .iter()
        .filter(|row| row["flagged"] == true)
        .filter_map(|row| row["id"].as_str().map(str::to_owned))
        .collect();
    let n_flagged = status_summary["n_flagged"]
        .as_u64()
        .unwrap_or_else(|| panic!("{kind}: n_flagged is not an integer: {status_summary}"));
    assert_eq!(
        n_flagged as usize,
        flagged.len(),
        "{kind}: {status_summary}"
    );
    let share = status_summary["share_flagged"].as_f64().unwrap();
    assert!(
        (share - flagged.len() as f64 / n_records as f64).abs() < 1e-9,
        "{kind}: {status_summary}"
    );
    flagged
}

fn share_of(found: &[String], among: &[String]) -> f64 {
    found.iter().filter(|id| among.contains(id)).count() as f64 / among.len() as f64
}

fn precision(found: &[String], truth: &[String]) -> f64 {
    found.iter().filter(|id| truth.contains(id)).count() as f64 / found.len().max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_flags_by_its_rule_and_counts_in_its_summary() {
    let service = memory_service();
    let (wrong, noise) = planted(&service).await;
    let n_target = 617;
    let run = |kind: &'static str, reference: Option<&'static str>, params: Value| {
        let service = service.clone();
        async move {
            let (status, rows) = analyze(&service, kind, "target", reference, params).await;
            (status.summary.expect("a done analysis has a summary"), rows)
        }
    };

    // Novelty and class_outlier find the noise; the fence is calibrated.
    for kind in ["novelty", "class_outlier"] {
        let (summary, rows) = run(kind, Some("reference"), json!({})).await;
        let flagged = flagged_ids(kind, &summary, &rows, n_target);
        assert!(share_of(&flagged, &noise) >= 0.9, "{kind}: {flagged:?}");
        assert!(precision(&flagged, &noise) >= 0.5, "{kind}: {flagged:?}");
        assert!(summary["cut"].as_f64().is_some(), "{kind}: {summary}");
    }
    // Boundary uncertainty flags mostly the wrong predictions, and most
    // of them.
    let (summary, rows) = run("boundary_uncertainty", Some("reference"), json!({})).await;
    let flagged = flagged_ids("boundary_uncertainty", &summary, &rows, n_target);
    let wrong_or_noise: Vec<String> = wrong.iter().chain(&noise).cloned().collect();
    assert!(precision(&flagged, &wrong_or_noise) >= 0.8, "{flagged:?}");
    assert!(share_of(&flagged, &wrong) >= 0.8, "{flagged:?}");
    assert_eq!(summary["rule"], "majority_disagrees");
    // Activation uncertainty and uniqueness: verdicts and counts agree.
    for (kind, reference) in [
        ("activation_uncertainty", Some("reference")),
        ("uniqueness", None),
    ] {
        let (summary, rows) = run(kind, reference, json!({})).await;
        let flagged = flagged_ids(kind, &summary, &rows, n_target);
        assert!(
            flagged.len() < n_target / 10,
            "{kind}: {} flagged",
            flagged.len()
        );
    }
    // A threshold replaces the rule.
    let (summary, rows) = run("novelty", Some("reference"), json!({"threshold": 0})).await;
    assert_eq!(
        flagged_ids("novelty", &summary, &rows, n_target).len(),
        n_target
    );
    assert_eq!(summary["rule"], "threshold");
    // Pairs, picks and maps.
    let (summary, _) = run("near_duplicates", None, json!({})).await;
    for key in ["n_pairs", "n_exact_pairs", "n_groups", "n_flagged"] {
        assert!(summary[key].is_u64(), "{key}: {summary}");
    }
    let (summary, rows) = run("select", Some("reference"), json!({"n": 15})).await;
    assert_eq!(flagged_ids("select", &summary, &rows, n_target).len(), 15);
    assert_eq!(summary["strategy"], "uncertainty_coverage");
    let (summary, rows) = run("projection", None, json!({})).await;
    assert!(flagged_ids("projection", &summary, &rows, n_target).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_says_whether_it_drifted_with_its_effect_size() {
    let service = memory_service();
    let digits = data::digits();
    let all = (0..digits.n_records())
        .map(|row| {
            record(
                format!("a{row}"),
                digits.row(row),
                Some(digits.labels[row]),
                None,
            )
        })
        .collect();
    create_dataset(&service, "all", 64, all).await;
    let low_digits = (0..digits.n_records())
        .filter(|&row| digits.labels[row] < 3)
        .map(|row| {
            record(
                format!("l{row}"),
                digits.row(row),
                Some(digits.labels[row]),
                None,
            )
        })
        .collect();
    create_dataset(&service, "low", 64, low_digits).await;
    let (status, rows) = analyze(&service, "drift", "low", Some("all"), json!({})).await;
    let summary = status.summary.unwrap();
    assert_eq!(summary["drifted"], true, "{summary}");
    assert!(summary["p_value"].as_f64().unwrap() < 0.05, "{summary}");
    assert!(summary["effect_size"].as_f64().unwrap() > 0.0, "{summary}");
    // Classes 0 to 2 grew from 30% to all of it, the others vanished: every
    // class's change is significant.
    assert_eq!(summary["n_flagged"], 10, "{summary}");
    assert!(rows.iter().all(|row| row["flagged"] == true));

    let halves = |parity: usize| {
        (0..digits.n_records())
            .filter(|row| row % 2 == parity)
            .map(|row| {
                record(
                    format!("h{row}"),
                    digits.row(row),
                    Some(digits.labels[row]),
                    None,
                )
            })
            .collect()
    };
    create_dataset(&service, "even", 64, halves(0)).await;
    create_dataset(&service, "odd", 64, halves(1)).await;
    let (same, _) = analyze(&service, "drift", "odd", Some("even"), json!({})).await;
    let summary = same.summary.unwrap();
    assert_eq!(
        summary["drifted"], false,
        "two halves of one set: {summary}"
    );
    assert_eq!(summary["n_flagged"], 0, "{summary}");
}
