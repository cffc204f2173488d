"""The Keras models of lenet-compare, as Keras users write them (`Sequential`, `Conv2D`,
`MaxPooling2D`, `Flatten`, `Dense`), and the shared weights (PyTorch's names and layouts) into and out
of them, and the backend Keras runs on (its version, its accelerator): what the keras row trains
(`keras_reference.py`) and serves (`serve.py`).

The importer sets KERAS_BACKEND (and hides a GPU it must not use) before importing this module, which
imports keras.
"""

import sys

import numpy as np
import keras
from keras import layers


# listing: lenet2
def lenet2():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(6, 5, padding="same", activation="relu", name="conv1"),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 5, activation="relu", name="conv2"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(120, activation="relu", name="fc1"),
        layers.Dense(84, activation="relu", name="fc2"),
        layers.Dense(10, name="fc3"),
    ])
# end listing


# listing: lenet3
def lenet3():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu", name="conv2"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu", name="conv3"),
        layers.Flatten(),
        layers.Dense(64, activation="relu", name="fc1"),
        layers.Dense(10, name="fc2"),
    ])
# end listing


def weighted_layers(model):
    """(layer, the layer's input shape without the batch) for each layer with weights, in order."""
    return [(layer, tuple(layer.input.shape[1:])) for layer in model.layers if layer.weights]


def set_shared_weights(model, shared):
    """The shared weights (PyTorch's names and layouts) into Keras's: convolution kernels from
    `[out, in, kh, kw]` to `[kh, kw, in, out]`, dense kernels from `[out, in]` to `[in, out]`, and for
    the dense layer after `Flatten` its inputs reordered from PyTorch's (channel, row, column) to
    Keras's channels-last (row, column, channel) flattening, so that each input meets its own weight."""
    for layer, shape in weighted_layers(model):
        w, b = shared[f"{layer.name}.weight"], shared[f"{layer.name}.bias"]
        if isinstance(layer, layers.Conv2D):
            kernel = w.transpose(2, 3, 1, 0)
        elif len(shape) == 1 and layer.input.shape[1] != w.shape[1]:
            sys.exit(f"error: keras: {layer.name}.weight has {w.shape[1]} inputs, the layer {layer.input.shape[1]}")
        else:
            kernel = w.T
        layer.set_weights([np.ascontiguousarray(kernel), b])
    flatten_fix(model, shared, into_keras=True)


def flatten_fix(model, tensors, into_keras):
    """Reorders the rows of the dense kernel that follows `Flatten` between the two flattening orders
    (in place on the Keras layer, or on `tensors` when reading Keras's weights out)."""
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, layers.Flatten):
            continue
        h, w, c = layer.input.shape[1:]
        dense = next(l for l in model.layers[i + 1:] if l.weights)
        if into_keras:
            torch_layout = tensors[f"{dense.name}.weight"]  # [out, c * h * w]
            kernel = torch_layout.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(-1, h * w * c).T
            dense.set_weights([np.ascontiguousarray(kernel), tensors[f"{dense.name}.bias"]])
        else:
            keras_layout = tensors[f"{dense.name}.weight"]  # [out, h * w * c] (already transposed)
            tensors[f"{dense.name}.weight"] = np.ascontiguousarray(
                keras_layout.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(-1, c * h * w))


def shared_weights(model):
    """The model's weights in the shared layout (the inverse of `set_shared_weights`)."""
    out = {}
    for layer, _ in weighted_layers(model):
        kernel, bias = layer.get_weights()
        out[f"{layer.name}.weight"] = kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T
        out[f"{layer.name}.bias"] = bias
    flatten_fix(model, out, into_keras=False)
    return out


def backend_version():
    """The backend Keras runs on, with its version ("jax 0.10.2")."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        return f"jax {jax.__version__}"
    if backend == "tensorflow":
        import tensorflow as tf
        return f"tensorflow {tf.__version__}"
    if backend == "torch":
        import torch
        return f"torch {torch.__version__}"
    return backend


def accelerator():
    """The backend's accelerator name, or None when it runs on the CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        device = jax.devices()[0]
        return None if device.platform == "cpu" else f"{device.platform}:{device.id} ({device.device_kind})"
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_logical_devices("GPU")
        return gpus[0].name if gpus else None
    if backend == "torch":
        import torch
        return f"cuda:0 ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else None
    return None
