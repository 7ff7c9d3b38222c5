"""Weight averaging: the mean of weight files, batch-norm statistics re-estimated (a run-level test is in
test_train.py)."""

import keras
import numpy as np

from emolib.runs import average as A


def _bn_model():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.9)(keras.layers.Dense(4)(inputs)))


def test_average_weights_is_the_element_wise_mean(tmp_path):
    model = _bn_model()
    files, weights = [], []
    for seed in range(3):
        model.set_weights([np.random.default_rng(seed).normal(size=w.shape) for w in model.get_weights()])
        weights.append(model.get_weights())
        files.append(tmp_path / f"epoch-{seed}.weights.h5")
        model.save_weights(files[-1])
    A.average_weights(model, files)
    for averaged, *each in zip(model.get_weights(), *weights):
        np.testing.assert_allclose(averaged, np.mean(each, axis=0), rtol=1e-5)


def test_recompute_batch_norm_is_the_mean_of_the_batch_statistics():
    inputs = keras.Input((3,))
    layer = keras.layers.BatchNormalization(momentum=0.9)
    model = keras.Model(inputs, layer(inputs))
    images = np.random.default_rng(0).normal(loc=[5.0, -2.0, 0.5], scale=[1.0, 3.0, 0.1],
                                             size=(512, 3)).astype(np.float32)
    A.recompute_batch_norm(model, images, batch_size=128)
    order = np.random.default_rng(0).permutation(len(images))
    batches = images[order].reshape(4, 128, 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean),
                               batches.mean(axis=1).mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance),
                               batches.var(axis=1).mean(axis=0), rtol=1e-3)
    assert layer.momentum == 0.9, "the layer's own momentum is restored"


def test_recompute_batch_norm_reaches_the_layers_of_a_nested_model():
    inner_input = keras.Input((2,))
    inner_layer = keras.layers.BatchNormalization()
    inner = keras.Model(inner_input, inner_layer(inner_input))  # as a transfer backbone inside a model
    inputs = keras.Input((2,))
    outer = keras.Model(inputs, keras.layers.Dense(1)(inner(inputs)))
    images = np.full((64, 2), 3.0, dtype=np.float32)
    A.recompute_batch_norm(outer, images, batch_size=32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(inner_layer.moving_mean), [3.0, 3.0], rtol=1e-5)
