"""The dataset catalogue: create, get-or-create, open, list, rename,
metadata, delete, and the errors of each."""

import pytest

import mutant


def test_create_dataset_returns_a_handle_with_the_catalogue_fields(client):
    ds = client.create_dataset("train", dimension=4, metric="cosine", metadata={"team": "vision"})
    assert (ds.name, ds.dimension, ds.metric) == ("train", 4, "cosine")
    assert ds.metadata == {"team": "vision"}
    info = ds.info()
    assert info.id == ds.id and info.record_count == 0
    assert info.created_at_ms > 0


def test_get_or_create_dataset_creates_once_then_opens(client):
    first = client.get_or_create_dataset("train", dimension=3)
    second = client.get_or_create_dataset("train", dimension=3)
    assert first.id == second.id
    assert second.metric == "l2"
    with pytest.raises(mutant.DatasetIncompatibleError) as error:
        client.get_or_create_dataset("train", dimension=5)
    assert error.value.details["existing_dimension"] == 3
    assert "use another name" in str(error.value)


def test_dataset_opens_an_existing_one_by_name_or_uuid(client):
    created = client.create_dataset("prod", dimension=2)
    assert client.dataset("prod").id == created.id
    assert client.dataset(created.id).name == "prod"


def test_list_datasets_in_name_order_and_by_metadata(client):
    client.create_dataset("b-set", dimension=2, metadata={"team": "vision", "split": "train"})
    client.create_dataset("a-set", dimension=2, metadata={"team": "audio"})
    listed = client.list_datasets()
    assert [info.name for info in listed] == ["a-set", "b-set"]
    assert all(isinstance(info, mutant.DatasetInfo) for info in listed)
    assert [info.name for info in client.list_datasets(metadata={"team": "vision"})] == ["b-set"]
    assert client.list_datasets(metadata={"team": "nobody"}) == []


def test_rename_and_metadata_changes_follow_the_handle(client):
    ds = client.create_dataset("old-name", dimension=2, metadata={"a": 1, "b": 2})
    ds.rename("new-name")
    assert ds.name == "new-name"
    assert client.dataset("new-name").id == ds.id
    ds.patch_metadata({"a": None, "c": 3})
    assert ds.metadata == {"b": 2, "c": 3}
    ds.set_metadata({"only": True})
    assert client.dataset("new-name").metadata == {"only": True}


def test_delete_dataset_removes_it(client):
    ds = client.create_dataset("gone", dimension=2)
    client.delete_dataset(ds)
    with pytest.raises(mutant.UnknownDatasetError) as error:
        client.dataset("gone")
    assert error.value.code == "unknown_dataset"
    assert isinstance(error.value, LookupError)
    with pytest.raises(mutant.UnknownDatasetError):
        client.delete_dataset("gone")


def test_catalogue_errors_have_their_classes_and_codes(client):
    client.create_dataset("taken", dimension=2)
    with pytest.raises(mutant.DatasetExistsError) as exists:
        client.create_dataset("taken", dimension=2)
    assert exists.value.code == "dataset_exists"
    with pytest.raises(mutant.InvalidDatasetNameError) as bad_name:
        client.create_dataset("9 starts with a digit", dimension=2)
    assert bad_name.value.code == "invalid_dataset_name"
    with pytest.raises(mutant.InvalidDimensionError) as bad_dimension:
        client.create_dataset("flat", dimension=0)
    assert bad_dimension.value.code == "invalid_dimension"
    with pytest.raises(mutant.UnknownMetricError) as bad_metric:
        client.create_dataset("manhattan", dimension=2, metric="manhattan")
    assert bad_metric.value.code == "unknown_metric"
    assert isinstance(bad_metric.value, ValueError)
    assert client.list_datasets()[0].name == "taken" and len(client.list_datasets()) == 1


def test_version_reports_the_protocol(client):
    version = client.version()
    assert version["protocol"] == mutant.PROTOCOL_VERSION
