"""``train.early_stopping``: a real run stops once val_loss stops improving and keeps the best epoch's weights."""

import mlflow
import numpy as np
import pytest

from pipelines.splits import load_splits
from tasks.core.recipe import load_recipe
from tasks.core.trainer import train

TRAIN_LIMIT, VAL_FRACTION, EPOCHS, PATIENCE = 128, 0.5, 12, 2
# LeNet-5 on 128 Fashion-MNIST images at a high learning rate: val_loss bottoms out within a few epochs, then wobbles
# (seed 42 here: best epoch 6 of 8, the last epoch 0.035 worse than the best)
OVERRIDES = [f"data.train_limit={TRAIN_LIMIT}", f"data.val_fraction={VAL_FRACTION}", "data.test_limit=200", "data.augment=[]",
             f"train.epochs={EPOCHS}", "train.batch_size=32", "train.learning_rate=0.01", "train.schedule=constant",
             "export.enabled=false", "seed=42"]


def _val_loss(model) -> float:
    """Sparse categorical cross-entropy of ``model`` on the recipe's validation split, computed here with numpy."""
    x, y = zip(*load_splits("fashion_mnist", 42, VAL_FRACTION, train_limit=TRAIN_LIMIT).val.as_numpy_iterator(), strict=True)
    probs = np.clip(model.predict(np.stack(x), verbose=0), 1e-7, 1 - 1e-7)
    return float(-np.mean(np.log(probs[np.arange(len(y)), np.asarray(y)])))


@pytest.mark.slow
def test_early_stopping_stops_and_restores_the_best_weights(mlflow_store, workdir):
    result = train(load_recipe("fashion_mnist_lenet5", [*OVERRIDES, f"train.early_stopping={PATIENCE}"]), workdir)
    val = result.history["val_loss"]
    best = int(np.argmin(val))
    # stopped early, exactly PATIENCE epochs after the last improvement (Keras' rule, min_delta 0)
    assert len(val) < EPOCHS and len(val) == best + 1 + PATIENCE, val
    assert val[-1] > val[best]
    # the weights that were evaluated and logged are the best epoch's, not the last one's
    model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    assert _val_loss(model) == pytest.approx(val[best], abs=1e-4), (val, best)
    run = mlflow.get_run(result.run_id)
    assert run.data.params["train.early_stopping"] == str(PATIENCE)
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(result.run_id, "val_loss")] == list(range(len(val)))


@pytest.mark.slow
def test_without_early_stopping_the_same_run_trains_every_epoch(mlflow_store, workdir):
    result = train(load_recipe("fashion_mnist_lenet5", OVERRIDES), workdir)
    val = result.history["val_loss"]
    assert len(val) == EPOCHS
    model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    assert _val_loss(model) == pytest.approx(val[-1], abs=1e-4)  # the last epoch's weights
