"""Analyses: analyze (waits, with a progress bar), the summary, ranked
results with joined fields and filters, to_pandas, start_analysis with
status, wait and cancel, and failed or cancelled runs as exceptions."""

import numpy as np
import pytest

import mutant

N_CLASSES, PER_CLASS, DIMENSION = 5, 40, 8
FLIPPED = [f"r{index:04d}" for index in range(3, N_CLASSES * PER_CLASS, 23)]


@pytest.fixture
def labeled(client):
    """Five well separated blobs, labeled by blob, with some labels flipped."""
    rng = np.random.default_rng(7)
    centres = rng.normal(scale=20.0, size=(N_CLASSES, DIMENSION))
    vectors = np.concatenate(
        [centre + rng.normal(size=(PER_CLASS, DIMENSION)) for centre in centres]
    ).astype(np.float32)
    ids = [f"r{index:04d}" for index in range(len(vectors))]
    labels = [f"class-{index // PER_CLASS}" for index in range(len(vectors))]
    for record_id in FLIPPED:
        index = ids.index(record_id)
        labels[index] = f"class-{(index // PER_CLASS + 1) % N_CLASSES}"
    ds = client.create_dataset("train", dimension=DIMENSION)
    ds.upsert(ids, vectors, labels=labels, uris=[f"s3://images/{i}.png" for i in ids])
    return ds


def test_analyze_finds_the_flipped_labels(client, labeled):
    run = client.analyze("mislabel", target="train", k=10, progress=False)
    assert run.last_status.status == "done"
    top = run.results(limit=len(FLIPPED))
    assert sorted(row["id"] for row in top) == sorted(FLIPPED)
    assert [row["rank"] for row in top] == list(range(1, len(FLIPPED) + 1))
    everything = run.results()
    assert len(everything) == N_CLASSES * PER_CLASS
    scores = [row["score"] for row in everything]
    assert scores == sorted(scores, reverse=True)


def test_results_join_record_fields_and_filter(client, labeled):
    run = client.analyze("mislabel", target=labeled, progress=False)
    rows = run.results(limit=3, include=("label", "uri"))
    for row in rows:
        assert row["uri"] == f"s3://images/{row['id']}.png"
        assert row["label"].startswith("class-")
    flagged = run.results(flagged=True)
    assert flagged and all(row["flagged"] for row in flagged)
    assert run.summary["n_flagged"] == len(flagged)
    assert [row["id"] for row in run.results(flagged=True, limit=2)] == [row["id"] for row in flagged[:2]]
    assert {row["id"] for row in flagged} >= set(FLIPPED)
    not_flagged = run.results(flagged=False)
    assert len(flagged) + len(not_flagged) == N_CLASSES * PER_CLASS
    high = run.results(min_score=0.5)
    assert high and all(row["score"] >= 0.5 for row in high)
    with pytest.raises(ValueError, match="include has 'vector'"):
        run.results(include=("vector",))


def test_to_pandas_has_one_row_per_result(client, labeled):
    frame = client.analyze("mislabel", target="train", progress=False).to_pandas(include="label")
    assert len(frame) == N_CLASSES * PER_CLASS
    assert {"id", "score", "rank", "label"} <= set(frame.columns)
    assert frame["rank"].tolist() == list(range(1, len(frame) + 1))


def test_summary_of_a_drift(client, labeled):
    rng = np.random.default_rng(3)
    prod = client.create_dataset("prod", dimension=DIMENSION)
    prod.upsert([f"p{i}" for i in range(100)], rng.normal(loc=5.0, size=(100, DIMENSION)))
    run = client.analyze("drift", target="prod", reference="train", progress=False, n_permutations=20)
    assert run.summary is not None
    assert run.summary["mmd_squared"] > 0
    assert 0 < run.summary["p_value"] <= 1


def test_select_with_the_progress_bar_on_stderr(client, labeled, capsys):
    run = client.analyze("select", target="train", n=10, progress=True)
    assert len(run.results()) == 10
    assert "select" in capsys.readouterr().err


def test_start_analysis_status_wait_and_cancel(client, labeled):
    analysis = client.start_analysis("uniqueness", target="train", k=5)
    assert analysis.kind == "uniqueness"
    assert analysis.status().status in ("queued", "running", "done")
    assert analysis.wait(progress=False) is analysis
    assert analysis.last_status.done and analysis.last_status.progress == 1.0
    again = client.analysis(analysis.id)
    assert again.status().status == "done"
    # Cancelling a finished analysis changes nothing.
    assert analysis.cancel().status == "done"
    assert len(again.results(limit=5)) == 5


def test_a_failed_analysis_raises_with_the_reason(client):
    dot = client.create_dataset("dotted", dimension=2, metric="dot")
    dot.upsert(["a", "b", "c"], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with pytest.raises(mutant.AnalysisFailedError) as error:
        client.analyze("uniqueness", target="dotted", progress=False)
    assert "dot" in str(error.value)
    assert error.value.details["kind"] == "uniqueness"


def test_a_cancelled_analysis_raises_and_has_no_results(client):
    ds = client.create_dataset("pool", dimension=32)
    n_rows = 20_000
    ds.upsert([f"p{i}" for i in range(n_rows)], np.random.default_rng(1).normal(size=(n_rows, 32)))
    analysis = client.start_analysis("uniqueness", target="pool", k=50)
    status = analysis.cancel()
    assert status.status in ("queued", "running", "cancelled")
    with pytest.raises(mutant.AnalysisCancelledError, match="start it again"):
        analysis.wait(progress=False)
    with pytest.raises(mutant.AnalysisNotFinishedError) as error:
        analysis.results()
    assert error.value.code == "analysis_not_finished"
