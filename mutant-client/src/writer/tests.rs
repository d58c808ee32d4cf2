//! The batch writer against a fake sink: thresholds, backpressure, errors,
//! ordering of repeated ids. Time is paused, so ages are exact.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use mutant_core::ingest::MAX_BATCH_RECORDS;
use tokio::time::Instant;

use super::*;

/// Records every batch and the order in which batches start and end.
#[derive(Default)]
struct FakeState {
    batches: Mutex<Vec<Vec<Record>>>,
    events: Mutex<Vec<String>>,
    n_in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    delay: Duration,
    /// The batch (0-based, in start order) that fails.
    failing_batch: Option<usize>,
}

#[derive(Clone)]
struct FakeSink(Arc<FakeState>);

impl BatchSink for FakeSink {
    fn send(&self, records: Vec<Record>) -> impl Future<Output = Result<usize>> + Send + 'static {
        let state = Arc::clone(&self.0);
        async move {
            let batch_idx = {
                let mut batches = state.batches.lock().unwrap();
                batches.push(records.clone());
                batches.len() - 1
            };
            state
                .events
                .lock()
                .unwrap()
                .push(format!("start {batch_idx}"));
            let n_in_flight = state.n_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_in_flight.fetch_max(n_in_flight, Ordering::SeqCst);
            tokio::time::sleep(state.delay).await;
            state.n_in_flight.fetch_sub(1, Ordering::SeqCst);
            state
                .events
                .lock()
                .unwrap()
                .push(format!("end {batch_idx}"));
            if state.failing_batch == Some(batch_idx) {
                return Err(Error::Unavailable {
                    code: "store_unavailable".into(),
                    message: "ClickHouse is down".into(),
                    attempts: 3,
                });
            }
            Ok(records.len())
        }
    }
}

fn writer(state: &Arc<FakeState>, config: BatchWriterConfig) -> BatchWriter {
    BatchWriter::spawn(
        &Handle::current(),
        "train",
        FakeSink(Arc::clone(state)),
        config,
    )
    .unwrap()
}

fn record(id: impl Into<String>, value: f32) -> Record {
    Record::new(id, vec![value; 4])
}

fn batch_sizes(state: &FakeState) -> Vec<usize> {
    state.batches.lock().unwrap().iter().map(Vec::len).collect()
}

fn patient() -> BatchWriterConfig {
    BatchWriterConfig::default().with_max_batch_age(Duration::from_secs(3600))
}

#[tokio::test(start_paused = true)]
async fn batches_are_cut_by_count() {
    let state = Arc::new(FakeState::default());
    let mut writer = writer(&state, patient().with_max_batch_records(1000));
    for index in 0..2500 {
        writer
            .write(record(format!("r{index}"), 1.0))
            .await
            .unwrap();
    }
    let summary = writer.finish().await.unwrap();
    assert_eq!(batch_sizes(&state), [1000, 1000, 500]);
    assert_eq!(
        (
            summary.n_records_written,
            summary.n_batches,
            summary.n_records_superseded
        ),
        (2500, 3, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn batches_are_cut_by_bytes() {
    let state = Arc::new(FakeState::default());
    // Each record is 4 + 2 + 4 + 400 + 1 = 411 bytes in a frame.
    let mut writer = writer(&state, patient().with_max_batch_bytes(1000));
    for index in 0..5 {
        writer
            .write(Record::new(format!("r{index}"), vec![0.5; 100]))
            .await
            .unwrap();
    }
    writer.finish().await.unwrap();
    assert_eq!(batch_sizes(&state), [2, 2, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_record_larger_than_the_byte_limit_goes_alone() {
    let state = Arc::new(FakeState::default());
    let mut writer = writer(&state, patient().with_max_batch_bytes(100));
    writer.write(record("small", 1.0)).await.unwrap();
    writer
        .write(Record::new("big", vec![0.5; 4]).with_uri("u".repeat(200)))
        .await
        .unwrap();
    writer.write(record("small-2", 1.0)).await.unwrap();
    writer.finish().await.unwrap();
    assert_eq!(batch_sizes(&state), [1, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn batches_are_cut_by_age() {
    let state = Arc::new(FakeState::default());
    let mut writer = writer(
        &state,
        BatchWriterConfig::default().with_max_batch_age(Duration::from_millis(100)),
    );
    for index in 0..3 {
        writer
            .write(record(format!("r{index}"), 1.0))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(90)).await;
    assert!(batch_sizes(&state).is_empty(), "sent before its age");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(batch_sizes(&state), [3]);
    assert_eq!(writer.n_unacknowledged(), 0);
    writer.write(record("late", 1.0)).await.unwrap();
    assert_eq!(writer.n_unacknowledged(), 1);
    writer.finish().await.unwrap();
    assert_eq!(batch_sizes(&state), [3, 1]);
}

#[tokio::test(start_paused = true)]
async fn in_flight_batches_are_bounded() {
    let state = Arc::new(FakeState {
        delay: Duration::from_millis(10),
        ..FakeState::default()
    });
    let mut writer = writer(
        &state,
        patient().with_max_batch_records(1).with_max_in_flight(2),
    );
    for index in 0..20 {
        writer
            .write(record(format!("r{index}"), 1.0))
            .await
            .unwrap();
    }
    let summary = writer.finish().await.unwrap();
    assert_eq!(summary.n_batches, 20);
    assert_eq!(state.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn writes_wait_while_every_slot_is_taken() {
    let state = Arc::new(FakeState {
        delay: Duration::from_secs(10),
        ..FakeState::default()
    });
    let mut writer = writer(
        &state,
        patient().with_max_batch_records(1).with_max_in_flight(1),
    );
    let started = Instant::now();
    // One batch in flight, one waiting for its slot, one in the channel:
    // the fourth write has to wait for the first batch.
    for index in 0..4 {
        writer
            .write(record(format!("r{index}"), 1.0))
            .await
            .unwrap();
    }
    assert!(started.elapsed() >= Duration::from_secs(10));
    writer.finish().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_surfaces_on_a_later_write_and_on_finish() {
    let state = Arc::new(FakeState {
        delay: Duration::from_millis(10),
        failing_batch: Some(1),
        ..FakeState::default()
    });
    let mut writer = writer(
        &state,
        patient().with_max_batch_records(1).with_max_in_flight(1),
    );
    let mut first_error = None;
    for index in 0..50 {
        if let Err(error) = writer.write(record(format!("r{index}"), 1.0)).await {
            first_error = Some(error);
            break;
        }
    }
    let error = first_error.expect("a write after the failed batch fails");
    assert!(matches!(error, Error::Unavailable { attempts: 3, .. }));
    assert!(writer.n_unacknowledged() > 0);
    assert_eq!(writer.finish().await.unwrap_err(), error);
    assert!(
        batch_sizes(&state).len() < 50,
        "kept sending after a failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_last_batch_fails_finish() {
    let state = Arc::new(FakeState {
        failing_batch: Some(0),
        ..FakeState::default()
    });
    let mut writer = writer(&state, patient());
    writer.write(record("a", 1.0)).await.unwrap();
    assert!(matches!(
        writer.finish().await,
        Err(Error::Unavailable { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_later_write_of_an_id_wins_within_a_batch() {
    let state = Arc::new(FakeState::default());
    let mut writer = writer(&state, patient());
    writer.write(record("a", 1.0)).await.unwrap();
    writer.write(record("b", 2.0)).await.unwrap();
    writer.write(record("a", 3.0)).await.unwrap();
    let summary = writer.finish().await.unwrap();
    let batches = state.batches.lock().unwrap().clone();
    assert_eq!(batches, [vec![record("a", 3.0), record("b", 2.0)]]);
    assert_eq!(
        (summary.n_records_written, summary.n_records_superseded),
        (2, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_repeating_an_in_flight_id_waits_for_it() {
    let state = Arc::new(FakeState {
        delay: Duration::from_millis(10),
        ..FakeState::default()
    });
    let mut writer = writer(
        &state,
        patient().with_max_batch_records(1).with_max_in_flight(4),
    );
    writer.write(record("a", 1.0)).await.unwrap();
    writer.write(record("b", 1.0)).await.unwrap();
    writer.write(record("a", 2.0)).await.unwrap();
    writer.write(record("c", 1.0)).await.unwrap();
    writer.finish().await.unwrap();
    let events = state.events.lock().unwrap().clone();
    let position = |event: &str| events.iter().position(|seen| seen == event).unwrap();
    assert!(position("end 0") < position("start 2"), "{events:?}");
    assert!(position("start 1") < position("end 0"), "{events:?}");
    let batches = state.batches.lock().unwrap().clone();
    assert_eq!(batches[2], [record("a", 2.0)]);
}

#[tokio::test(start_paused = true)]
async fn cheap_checks_refuse_a_record_but_keep_the_writer() {
    let state = Arc::new(FakeState::default());
    let mut writer = writer(&state, patient());
    let empty_id = writer.write(record("", 1.0)).await.unwrap_err();
    assert_eq!(empty_id.code(), Some("empty_record_id"));
    writer.write(record("a", 1.0)).await.unwrap();
    let nan = writer.write(record("b", f32::NAN)).await.unwrap_err();
    assert_eq!(nan.code(), Some("non_finite_value"));
    let wrong_dimension = writer
        .write(Record::new("c", vec![1.0; 3]))
        .await
        .unwrap_err();
    assert_eq!(wrong_dimension.code(), Some("dimension_mismatch"));
    assert!(wrong_dimension.to_string().contains("have 4"));
    let summary = writer.finish().await.unwrap();
    assert_eq!(summary.n_records_written, 1);
}

#[tokio::test(start_paused = true)]
async fn finishing_an_empty_writer_sends_nothing() {
    let state = Arc::new(FakeState::default());
    let writer = writer(&state, BatchWriterConfig::default());
    assert_eq!(writer.dataset(), "train");
    assert_eq!(writer.finish().await.unwrap(), WriteSummary::default());
    assert!(batch_sizes(&state).is_empty());
}

#[tokio::test(start_paused = true)]
async fn dropping_an_unfinished_writer_abandons_it_without_panicking() {
    let state = Arc::new(FakeState {
        delay: Duration::from_secs(1),
        ..FakeState::default()
    });
    let mut writer = writer(&state, patient().with_max_batch_records(2));
    for index in 0..5 {
        writer
            .write(record(format!("r{index}"), 1.0))
            .await
            .unwrap();
    }
    assert_eq!(writer.n_unacknowledged(), 5);
    drop(writer);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let events = state.events.lock().unwrap().clone();
    assert!(
        !events.iter().any(|event| event.starts_with("end")),
        "{events:?}"
    );
}

#[test]
fn configurations_out_of_range_are_refused() {
    let defaults = BatchWriterConfig::default();
    assert_eq!(
        (
            defaults.max_batch_records(),
            defaults.max_batch_bytes(),
            defaults.max_batch_age(),
            defaults.max_in_flight()
        ),
        (1000, 4 << 20, Duration::from_millis(100), 16)
    );
    assert!(defaults.validate().is_ok());
    for bad in [
        defaults.clone().with_max_batch_records(0),
        defaults
            .clone()
            .with_max_batch_records(MAX_BATCH_RECORDS + 1),
        defaults.clone().with_max_batch_bytes(0),
        defaults.clone().with_max_in_flight(0),
    ] {
        let error = bad.validate().unwrap_err();
        assert_eq!(error.code(), Some("invalid_parameter"), "{bad:?}");
    }
}

#[test]
fn a_writer_needs_a_runtime() {
    let client = Client::new("http://127.0.0.1:7311").unwrap();
    assert!(matches!(
        client.batch_writer("train", BatchWriterConfig::default()),
        Err(Error::NoRuntime { .. })
    ));
}
