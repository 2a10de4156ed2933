"""tf.data service on loopback: one dispatcher and two workers, augmentation on the workers."""

import pytest
import tensorflow as tf

from pipelines.augment import augment_dataset
from pipelines.catalog import load_arrays
from pipelines.data_service import check_options, distribute, start_dispatcher, start_worker


@pytest.mark.slow
def test_augmentation_runs_on_two_loopback_workers():
    fm = load_arrays("fashion_mnist")
    x, y = fm.x_train[:64], fm.y_train[:64]
    dispatcher = start_dispatcher()
    address = dispatcher.target.split("://")[1]
    workers = [start_worker(address, host="127.0.0.1") for _ in range(2)]
    ds = augment_dataset(tf.data.Dataset.from_tensor_slices((x, y)), [{"mirror": {"p": 1.0}}], seed=1)
    remote = distribute(ds, dispatcher.target, mode="distributed_epoch")
    got = list(remote.as_numpy_iterator())
    assert len(got) == 64
    assert sorted(int(label) for _, label in got) == sorted(y.tolist())
    flipped = {x[i, :, ::-1].tobytes() for i in range(64)}
    assert all(image.tobytes() in flipped for image, _ in got)
    assert dispatcher._num_workers() == 2
    del workers


def test_service_options_are_checked():
    assert check_options({"dispatcher": "host:5050"})["dispatcher"] == "grpc://host:5050"
    for bad in ({"dispatcher": "host"}, {"dispatcher": "h:1", "mode": "fast"}, {"dispatcher": "h:1", "workers": 2}):
        try:
            check_options(bad)
        except ValueError as err:
            assert "data.service" in str(err)
        else:
            raise AssertionError(f"{bad} was accepted")
