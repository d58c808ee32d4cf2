"""Quickstart in Python: find wrong labels in real data, then pick what to
label next.

On scikit-learn's bundled handwritten digits (1,797 images of 8 x 8 pixels,
no download), the pixels serve as 64-d embeddings. Most images form a
labeled training set in which some labels are deliberately flipped; the rest
are an unlabeled pool with a model's predictions. The program streams both
into Mutant, asks ``mislabel`` which training labels look wrong (and checks
the answer against the flips it made), then asks ``select``, with its
defaults, which pool images a person should label next (and checks how many
of them the model gets wrong).

Run it against a server (``scripts/py_quickstart.sh`` does all of this)::

    pip install ./mutant-py scikit-learn
    scripts/clickhouse.sh start   # then a server, e.g. as scripts/demo.sh does
    MUTANT_URL=http://127.0.0.1:7311 python examples/quickstart.py
"""

import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import mutant

N_POOL = 300
FLIP_SHARE = 0.05
SEED = 0


def main() -> None:
    url = os.environ.get("MUTANT_URL", "http://127.0.0.1:7311")
    client = mutant.Client(url)

    # The data: pixels scaled to [0, 1], true classes, then flipped labels.
    digits = load_digits()
    vectors = (digits.data / 16.0).astype(np.float32)
    truth = digits.target.astype(str)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(vectors))
    train_rows, pool_rows = order[N_POOL:], order[:N_POOL]
    labels = truth[train_rows].copy()
    n_flips = int(len(train_rows) * FLIP_SHARE)
    flipped_positions = rng.choice(len(train_rows), size=n_flips, replace=False)
    for position in flipped_positions:
        others = [digit for digit in "0123456789" if digit != labels[position]]
        labels[position] = rng.choice(others)
    train_ids = [f"digit-{row}" for row in train_rows]
    flipped_ids = {train_ids[position] for position in flipped_positions}
    print(f"{len(train_rows)} training images, {n_flips} of them with a flipped label; "
          f"{len(pool_rows)} unlabeled pool images")

    # Fresh datasets on every run.
    for name in ("digits_train", "digits_pool"):
        if any(info.name == name for info in client.list_datasets()):
            client.delete_dataset(name)
    train = client.create_dataset("digits_train", dimension=64, metadata={"source": "sklearn digits"})
    pool = client.create_dataset("digits_pool", dimension=64)

    # Stream the training set in small pieces, as a producer would; the block
    # returns once every record is stored.
    with train.writer(batch_size=250) as writer:
        for start in range(0, len(train_rows), 100):
            rows = train_rows[start : start + 100]
            writer.write(
                train_ids[start : start + 100],
                vectors[rows],
                labels=list(labels[start : start + 100]),
                uris=[f"sklearn://digits/{row}" for row in rows],
            )
    print(f"streamed {writer.summary.n_records_written} records in {writer.summary.n_batches} batches")

    # The pool gets a model's predictions (trained on the noisy labels).
    model = LogisticRegression(max_iter=2000).fit(vectors[train_rows], labels)
    pool.upsert(
        [f"digit-{row}" for row in pool_rows],
        vectors[pool_rows],
        predictions=list(model.predict(vectors[pool_rows])),
        uris=[f"sklearn://digits/{row}" for row in pool_rows],
    )

    # A kNN query: the nearest training images to the first pool image.
    hits = train.knn(vectors[pool_rows[0]], k=5, include=("label",))
    print(f"\nnearest training images to pool image {pool_rows[0]} "
          f"(a {truth[pool_rows[0]]}): labels {hits.labels[0]}")

    # Which training labels are wrong?
    print("\nwhich training labels look wrong? (mislabel)")
    run = client.analyze("mislabel", target=train)
    top = run.results(limit=n_flips, include=("uri",))
    found = sum(row["id"] in flipped_ids for row in top)
    print(f"{found} of the top {n_flips} suspects are flipped labels "
          f"(precision {found / n_flips:.0%})")
    print(f"{'rank':>4}  {'id':<11} {'given':>5} {'suggested':>9} {'true':>4}  score  flipped")
    for row in top[:15]:
        row_index = int(row["id"].split("-")[1])
        print(f"{row['rank']:>4}  {row['id']:<11} {row['label']:>5} {str(row['suggested_label']):>9} "
              f"{truth[row_index]:>4}  {row['score']:.2f}  {'yes' if row['id'] in flipped_ids else 'no'}")
    summary = run.summary or {}
    flagged = run.results(flagged=True)
    caught = sum(row["id"] in flipped_ids for row in flagged)
    print(f"flagged: {summary.get('n_flagged', len(flagged))} records "
          f"({summary.get('share_flagged', len(flagged) / len(train_rows)):.1%} of the training set), "
          f"holding {caught} of the {n_flips} flips")

    # Which pool images should a person label next?
    print("\nwhich pool images to label next? (select 10, with the server's default strategy)")
    selection = client.analyze("select", target=pool, reference=train, n=10)
    if selection.summary and "strategy" in selection.summary:
        print(f"strategy: {selection.summary['strategy']}")
    picks = selection.results(include=("prediction", "uri"))
    for row in picks:
        print(f"{row['rank']:>3}  {row['id']:<11} predicted {row['prediction']}, "
              f"picked for {row['reason']}  {row['uri']}")
    pool_predictions = dict(zip((f"digit-{row}" for row in pool_rows), model.predict(vectors[pool_rows])))
    wrong = [row_id for row_id, predicted in pool_predictions.items()
             if predicted != truth[int(row_id.split("-")[1])]]
    wrong_picks = sum(row["id"] in wrong for row in picks)
    print(f"{wrong_picks} of the {len(picks)} picks are images the model gets wrong "
          f"({len(wrong)} of the {len(pool_rows)} pool images are)")

if __name__ == "__main__":
    main()
