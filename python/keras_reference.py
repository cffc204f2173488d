"""The Keras row of lenet-compare: the tutorial's other half, its Keras models as Keras users write them
(`Sequential`, `Conv2D`, `MaxPooling2D`, `Flatten`, `Dense`) trained with `model.fit`, from the same
initial weights and in the same batch order as every other row (read from a plan file that `lenet plan`
writes), timed the same way and reported in the same JSON format.

Keras 3 on the JAX backend unless KERAS_BACKEND names another one (tensorflow, where it is installed).
Only the standard library, numpy, keras with its backend and `lenet_common.py` beside it are used.
"""

import os
import platform
import sys
import time

import numpy as np

import lenet_common as common

FRAMEWORK = "keras"
# Steps that one call of the compiled train function runs in the tuned profile (`steps_per_execution`).
TUNED_STEPS_PER_EXECUTION = 16


def options():
    return common.arguments(FRAMEWORK, __doc__.split("\n\n")[0],
                            f"tuned: model.compile(steps_per_execution={TUNED_STEPS_PER_EXECUTION}), the "
                            "compiled train function runs that many steps per call")


parser = options()
args = parser.parse_args()
common.check_kernel_args(parser, args)
os.environ.setdefault("KERAS_BACKEND", "jax")
BACKEND = os.environ["KERAS_BACKEND"]
# `--threads N`: the process may run on N cores only, set before the backend starts, which sizes its
# thread pools from them; the CPU count of the report is what it got.
common.limit_cores(FRAMEWORK, args.threads)
if args.device == "cpu":
    common.hide_gpu(BACKEND)
# A kernel pass: the counter loaded before the backend is imported, so before its first CUDA call.
COUNTER = common.KernelCounter.start(args)
try:
    import keras
    from keras_models import accelerator, backend_version, lenet2, lenet3, set_shared_weights, shared_weights
except (ImportError, ValueError) as e:  # an unknown KERAS_BACKEND is a ValueError
    common.fail_before_start(args, f"keras cannot be imported with KERAS_BACKEND={BACKEND}: {e}")


def wait_for_device(model):
    """Returns when the device has finished everything queued on the model's variables."""
    if BACKEND == "jax":
        import jax
        jax.block_until_ready([v.value for v in model.variables])
    else:
        for v in model.trainable_variables:
            keras.ops.convert_to_numpy(keras.ops.sum(v.value))


def peak_device_bytes():
    if BACKEND == "jax":
        import jax
        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use")
    return None


class EpochClock(keras.callbacks.Callback):
    """Times each epoch's training from its first step to the device's end of the last one, and keeps
    each step's running-mean loss (what `fit` logs) to name the first bad step when an epoch's loss is
    not finite. The batch-end hook is `async_safe`: Keras reads the logs on its callback thread, off
    the training loop, so the steps are queued as `fit` queues them without callbacks."""

    async_safe = True

    def __init__(self, counter=None):
        super().__init__()
        self.seconds, self.means, self.logs = None, {}, {}
        # A kernel pass's counter, and the run's epoch (fit counts its one epoch from 0 each call).
        self.counter, self.epoch = counter, 0

    def on_epoch_begin(self, epoch, logs=None):
        wait_for_device(self.model)
        self.means = {}
        if self.counter:
            self.counter.mark(True, self.epoch)
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.means[batch] = float(logs["loss"])

    def on_epoch_end(self, epoch, logs=None):
        wait_for_device(self.model)
        self.seconds = time.perf_counter() - self.start
        if self.counter:
            self.counter.mark(False, self.epoch)
        self.logs = dict(logs or {})

    def steps(self, batch, n):
        """(step numbers, losses): each step's loss from the running means (the mean is weighted by
        the batches' sizes), stopping at the first that is not finite; with `steps_per_execution`
        above 1, one value per call of the train function (the mean of its steps), numbered by its
        last step."""
        sizes = np.minimum(batch, n - batch * np.arange(-(-n // batch)))
        done = np.cumsum(sizes)
        numbers, losses, before, total = [], [], 0, 0.0
        for step in sorted(self.means):
            # Keras numbers a short last call as if it were full.
            last = min(step, len(done) - 1)
            mean, seen = self.means[step], done[last]
            numbers.append(int(last) + 1)
            if not np.isfinite(mean):
                losses.append(mean)
                break
            losses.append((mean * seen - total) / (seen - before))
            before, total = seen, mean * seen
        return numbers[:len(losses)], losses


def evaluate(model, x, y):
    """A pass over a split with `model.evaluate`, timed from the device's end of what came before."""
    wait_for_device(model)
    start = time.perf_counter()
    out = model.evaluate(x, y, batch_size=1000, verbose=0, return_dict=True)
    return common.eval_record(float(out["loss"]), float(out["accuracy"]), int(y.shape[0]),
                              time.perf_counter() - start)


class KerasRow:
    """The keras row's side of the shared epoch loop (`lenet_common.train_epochs`): one `fit` over the
    epoch's data in the plan's order, timed by its EpochClock, and the test evaluation."""

    def __init__(self, model, train, test, clock, batch_size):
        self.model, (self.train_x, self.train_y), self.test_split = model, train, test
        self.clock, self.batch_size, self.n = clock, batch_size, train[1].shape[0]

    def prepare(self, epoch, order):
        xs, ys = self.train_x[order], self.train_y[order]
        self.clock.epoch = epoch
        return xs, ys

    def train(self, epoch, data):
        # One epoch of `fit` over the data in the plan's order, not shuffled: the batch order of
        # every other row.
        self.model.fit(*data, batch_size=self.batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[self.clock])
        clock, n, batch = self.clock, self.n, self.batch_size

        def steps():
            numbers, losses = clock.steps(batch, n)
            return losses, numbers, -(-n // batch)

        # `fit` queues its steps itself: when the host had queued the last one is not seen from
        # outside it (no queued time).
        return common.EpochTraining(float(clock.logs["loss"]), float(clock.logs["accuracy"]), clock.seconds, None,
                                    steps)

    def test(self):
        return evaluate(self.model, *self.test_split)

    def out_of_memory(self, error):
        # The backends' out-of-memory errors have no common type.
        text = str(error)
        return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def load(plan):
    """The two splits (channels last) and the model with the plan's weights (or Keras's own
    initialisers, seeded); the initial weights written for --initial-weights."""
    train_x, train_y = common.load_split(args, "train_images", "train_labels")
    test_x, test_y = common.load_split(args, "test_images", "test_labels")
    train_x, test_x = train_x[..., None], test_x[..., None]  # channels last: [n, 28, 28, 1]
    keras.utils.set_random_seed(args.seed)
    model = lenet2() if args.model == "lenet2" else lenet3()
    if args.init == "shared":
        set_shared_weights(model, plan)
    if args.initial_weights:
        common.write_safetensors(args.initial_weights, shared_weights(model))
    return (train_x, train_y), (test_x, test_y), model


def compile_model(model):
    """Compiles the model with the recipe's Adam and loss, as the profile has it; the tuned
    profile's settings as the report records them."""
    tuning = []
    steps_per_execution = 1
    if args.profile == "tuned":
        steps_per_execution = TUNED_STEPS_PER_EXECUTION
        tuning.append(common.tuning_entry(
            FRAMEWORK, "steps_per_execution", str(steps_per_execution), True,
            "model.compile's option: one call of the compiled train function runs that many steps"))
    model.compile(
        # Keras's default epsilon is 1e-7; the recipe's is 1e-8.
        optimizer=keras.optimizers.Adam(learning_rate=args.learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return tuning


def backend(model, gpu, tuning):
    """What the row says about itself (the report's backend)."""
    notes = [
        f"backend: {BACKEND}",
        f"fit jit-compiled: {'yes' if model.jit_compile else 'no'} (model.jit_compile)",
        "optimiser: keras Adam with epsilon 1e-8 (Keras's default is 1e-7), added to √v before the bias "
        "correction, as Keras's Adam does",
        "one fit call per epoch over that epoch's batch order, shuffle off; fit takes NumPy arrays and "
        "sends each batch to the device",
    ]
    if gpu is not None and BACKEND == "jax" and os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "true") != "false":
        notes.append("JAX preallocates 75% of the GPU's memory (its default): the driver's GPU memory reading "
                     "is that pool; peak device memory is JAX's own peak_bytes_in_use")
    return common.backend_info(
        FRAMEWORK, f"keras {keras.__version__}, {backend_version()}, python {platform.python_version()}",
        "cuda" if gpu is not None else "cpu", gpu or "cpu", len(os.sched_getaffinity(0)), [f"backend={BACKEND}"],
        notes, tuning)


def main():
    env = common.environment(sys.argv)
    gpu = accelerator()
    if args.device == "cuda" and gpu is None:
        sys.exit(f"error: keras: CUDA was asked for, but {backend_version()} finds no GPU")
    use_cuda = gpu is not None

    setup = time.perf_counter()
    plan = common.read_safetensors(args.plan)
    train, test, model = load(plan)
    if args.logits:
        images = common.LOGIT_IMAGES
        common.write_logits(args.logits, model.predict(test[0][:images], batch_size=images, verbose=0))
        return
    tuning = compile_model(model)
    wait_for_device(model)
    setup_seconds = time.perf_counter() - setup
    nvml = common.Nvml.open(0) if use_cuda else None
    if nvml:
        nvml.start_sampling()

    row = KerasRow(model, train, test, EpochClock(COUNTER), args.batch_size)
    epochs, failure = common.train_epochs(args, plan, row.n, row, nvml, COUNTER)
    splits = {"test": test, "train": train}
    report = common.report(args, backend(model, gpu, tuning), env, model.count_params(), row.n, test[1].shape[0],
                           setup_seconds, epochs, failure, lambda split: evaluate(model, *splits[split]),
                           peak_device_bytes if use_cuda else None, nvml.finish_sampling if nvml else None)
    common.finish(args, report)


if __name__ == "__main__":
    common.run_main(main, "keras")
