"""The PyTorch reference run of lenet-compare: the tutorial's framework, trained with the same recipe,
from the same initial weights and in the same batch order as the Rust runs (read from a plan file that
`lenet plan` writes), timed the same way, and reported in the same JSON format.

Only the standard library, numpy, torch and `lenet_common.py` beside it are used, so it runs wherever a
torch is installed.
"""

import contextlib
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import lenet_common as common

# listing: lenet2
class LeNet2(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # [batch, 6, 14, 14]
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # [batch, 16, 5, 5]
        x = torch.flatten(x, 1)  # [batch, 400]
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
# end listing


# listing: lenet3
class LeNet3(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.fc1 = nn.Linear(1024, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # [batch, 32, 14, 14]
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # [batch, 64, 6, 6]
        x = F.relu(self.conv3(x))  # [batch, 64, 4, 4]
        x = torch.flatten(x, 1)  # [batch, 1024]
        x = F.relu(self.fc1(x))
        return self.fc2(x)
# end listing


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(model, images, labels, device, batch=1000):
    sync(device)
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    hits = torch.zeros((), dtype=torch.int64, device=device)
    n = labels.shape[0]
    with torch.no_grad():
        for s in range(0, n, batch):
            xs, ys = images[s:s + batch], labels[s:s + batch]
            logits = model(xs)
            loss_sum += F.cross_entropy(logits, ys) * ys.shape[0]
            hits += (logits.argmax(-1) == ys).sum()
    loss, accuracy = loss_sum.item() / n, hits.item() / n
    sync(device)
    return common.eval_record(loss, accuracy, n, time.perf_counter() - start)


def tuning_entry(setting, value, applied, note):
    return common.tuning_entry("pytorch", setting, value, applied, note)


# Eager steps before the capture, as PyTorch's CUDA-graph documentation does: they warm up cuDNN,
# cuBLAS, the allocator and the optimiser's state on a side stream, and they are real training
# steps (the first of the run), so the run's math is the idiomatic run's step for step.
WARMUP_STEPS = 3


class GraphedStep:
    """The whole training step of a batch of `batch` as one CUDA graph: the batch's indices are
    copied into a fixed buffer, then one replay gathers the batch, runs forward, loss, backward and
    the fused, capturable Adam, adds the loss and correct count to fixed sums and keeps the step's
    loss in a fixed slot. The first WARMUP_STEPS full batches run eagerly (then the capture); a
    batch of another size (the last, short one) also runs eagerly."""

    def __init__(self, model, opt, train_x, train_y, batch, device):
        self.model, self.opt, self.x, self.y, self.batch = model, opt, train_x, train_y, batch
        self.device = device
        self.idx = torch.zeros(batch, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.hits = torch.zeros((), dtype=torch.int64, device=device)
        self.losses = torch.zeros(max(1, train_y.shape[0] // batch + 1), device=device)
        self.slot = torch.zeros((), dtype=torch.int64, device=device)
        self.graph = None
        self.side = torch.cuda.Stream(self.device)
        self.eager_steps = 0
        self.order = []  # per step of the epoch: True for a replay, False for an eager step

    def start_epoch(self):
        self.loss_sum.zero_()
        self.hits.zero_()
        self.slot.zero_()
        self.order = []

    def _body(self):
        xs, ys = self.x.index_select(0, self.idx), self.y.index_select(0, self.idx)
        logits = self.model(xs)
        loss = F.cross_entropy(logits, ys)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.loss_sum.add_(loss.detach() * self.batch)
            self.hits.add_((logits.argmax(-1) == ys).sum())
            self.losses.index_copy_(0, self.slot.view(1), loss.detach().view(1))
            self.slot.add_(1)

    def step(self, idx):
        """Runs the step of `idx` through the graph (True), or leaves it to the eager loop."""
        if idx.shape[0] != self.batch or (self.graph is None and self.eager_steps < WARMUP_STEPS):
            return False
        if self.graph is None:
            self._capture()
        self.idx.copy_(idx)
        self.graph.replay()
        self.order.append(True)
        return True

    @contextlib.contextmanager
    def eager(self, idx):
        """An eager step: the warm-up ones on the side stream the capture will use, as PyTorch's
        CUDA-graph documentation asks."""
        warmup = self.graph is None and idx.shape[0] == self.batch
        if warmup:
            self.side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.side):
                yield
            torch.cuda.current_stream(self.device).wait_stream(self.side)
            self.eager_steps += 1
        else:
            yield
        self.order.append(False)

    def _capture(self):
        torch.cuda.synchronize(self.device)
        # Gradients the graph owns: set to None here, allocated by the captured backward, and
        # overwritten (not accumulated) by each replay.
        self.opt.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._body()

    def step_losses(self, eager_losses):
        """Every step's loss in step order, the replays' from their slots."""
        replayed = iter(self.losses[:self.slot.item()].unbind(0)) if self.graph is not None else iter(())
        eager = iter(eager_losses)
        return [next(replayed) if r else next(eager) for r in self.order]


class TorchRow:
    """The PyTorch row's side of the shared epoch loop (`lenet_common.train_epochs`): an epoch of
    eager steps (or of replays of the tuned step's CUDA graph), timed from its first step to the
    device's end of its last one, and the test evaluation."""

    def __init__(self, model, opt, train, test, device, graphed, counter, batch_size):
        self.model, self.opt, self.device, self.graphed = model, opt, device, graphed
        (self.train_x, self.train_y), self.test_split = train, test
        self.counter, self.batch_size, self.n = counter, batch_size, train[1].shape[0]

    def prepare(self, epoch, order):
        return torch.from_numpy(order.copy())

    def train(self, epoch, order):
        device, graphed = self.device, self.graphed
        sync(device)
        if self.counter:
            self.counter.mark(True, epoch)
        start = time.perf_counter()
        order = order.to(device)
        sums = [torch.zeros((), device=device), torch.zeros((), dtype=torch.int64, device=device)]
        # Each step's loss stays on the device; read back only if the epoch's sum is not finite (as
        # the Rust frameworks do, so that every run pays the same for it).
        losses = []
        if graphed:
            graphed.start_epoch()
        for s in range(0, self.n, self.batch_size):
            idx = order[s:s + self.batch_size]
            if graphed and graphed.step(idx):
                continue
            with graphed.eager(idx) if graphed else contextlib.nullcontext():
                losses.append(self.eager_step(idx, sums))
        loss_sum, hits = sums
        if graphed:
            # The replays' sums beside the eager steps'.
            loss_sum += graphed.loss_sum
            hits += graphed.hits
        # When the host had queued the last step (the Rust harness records the same).
        queued_seconds = time.perf_counter() - start
        train_loss, train_hits = loss_sum.item(), hits.item()
        sync(device)
        train_seconds = time.perf_counter() - start
        if self.counter:
            self.counter.mark(False, epoch)

        def steps():
            every = graphed.step_losses(losses) if graphed else losses
            return torch.stack(every).double().cpu().numpy().tolist(), None, None

        n = self.n
        return common.EpochTraining(train_loss / n, train_hits / n, train_seconds, queued_seconds, steps)

    def eager_step(self, idx, sums):
        """One training step of the batch `idx`, its loss and correct count added to `sums` on the
        device; its loss (on the device)."""
        xs, ys = self.train_x.index_select(0, idx), self.train_y.index_select(0, idx)
        logits = self.model(xs)
        loss = F.cross_entropy(logits, ys)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            sums[0] += loss.detach() * ys.shape[0]
            sums[1] += (logits.argmax(-1) == ys).sum()
        return loss.detach()

    def test(self):
        return evaluate(self.model, *self.test_split, self.device)

    def out_of_memory(self, error):
        return isinstance(error, torch.cuda.OutOfMemoryError)


def options():
    p = common.arguments("pytorch", __doc__.split("\n\n")[0],
                         "tuned: fused Adam; on CUDA also cudnn.benchmark and the whole step captured as a CUDA graph")
    args = p.parse_args()
    common.check_kernel_args(p, args)
    return args


def load(args, plan, device):
    """The two splits on the device, and the model with the plan's weights (or PyTorch's own
    initialisers, seeded); the initial weights written for --initial-weights."""
    def split(images, labels):
        x, y = common.load_split(args, images, labels)
        return torch.from_numpy(x).reshape(-1, 1, 28, 28).to(device), torch.from_numpy(y).to(device)

    train = split("train_images", "train_labels")
    test = split("test_images", "test_labels")
    torch.manual_seed(args.seed)
    model = (LeNet2() if args.model == "lenet2" else LeNet3()).to(device)
    if args.init == "shared":
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in plan.items() if not k.startswith("order.")})
    if args.initial_weights:
        common.write_safetensors(args.initial_weights,
                                 {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    return train, test, model


def optimiser(args, model, train, device, use_cuda):
    """Adam as the profile has it, the tuned profile's settings as the report records them, and the
    tuned step's CUDA graph (None but in the tuned profile on CUDA)."""
    tuned = args.profile == "tuned"
    tuning = []
    if tuned and use_cuda:
        torch.backends.cudnn.benchmark = True
        tuning.append(tuning_entry("cudnn.benchmark", "true", True, "cuDNN times its algorithms once per shape"))
    if tuned:
        # One kernel over every parameter instead of a dozen per tensor; on CUDA also capturable
        # (its step counts live on the device), which the CUDA graph below needs.
        opt = torch.optim.Adam(model.parameters(), lr=args.learning_rate, betas=(0.9, 0.999), eps=1e-8,
                               weight_decay=0, fused=True, capturable=use_cuda)
        tuning.append(tuning_entry("fused Adam", "fused=True" + (", capturable=True" if use_cuda else ""), True,
                                   "torch.optim.Adam's fused kernel, the same update"))
    else:
        opt = torch.optim.Adam(model.parameters(), lr=args.learning_rate, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    graphed = None
    if tuned:
        if use_cuda:
            graphed = GraphedStep(model, opt, *train, args.batch_size, device)
            tuning.append(tuning_entry("CUDA graph", "whole step", True,
                                       f"gather, forward, loss, backward, Adam and the sums of a batch of {args.batch_size} "
                                       f"captured once after {WARMUP_STEPS} eager steps and replayed; a shorter last batch runs eagerly"))
        else:
            tuning.append(tuning_entry("CUDA graph", "whole step", False, "the run is on the CPU: no CUDA graphs there"))
    return opt, tuning, graphed


def backend(device, use_cuda, tuning):
    """What the row says about itself (the report's backend)."""
    notes = [f"cudnn: {'available' if torch.backends.cudnn.is_available() else 'not available'}"]
    if use_cuda:
        benchmark = str(torch.backends.cudnn.benchmark).lower()
        notes.append(f"cudnn.benchmark: {benchmark} ({'the tuned profile' if tuning else 'torch default'})")
    return common.backend_info("pytorch", f"torch {torch.__version__}, python {platform.python_version()}",
                               "cuda" if use_cuda else "cpu", str(device), torch.get_num_threads(), [], notes,
                               tuning)


def main():
    args = options()
    # A kernel pass: the counter loaded before torch's first CUDA call.
    counter = common.KernelCounter.start(args)

    env = common.environment(sys.argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: pytorch: CUDA was asked for, but torch finds no CUDA device")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda:0" if use_cuda else "cpu")

    setup = time.perf_counter()
    plan = common.read_safetensors(args.plan)
    train, test, model = load(args, plan, device)
    if args.logits:
        with torch.no_grad():
            common.write_logits(args.logits, model(test[0][:common.LOGIT_IMAGES]).cpu().numpy())
        return
    opt, tuning, graphed = optimiser(args, model, train, device, use_cuda)
    sync(device)
    setup_seconds = time.perf_counter() - setup
    nvml = common.Nvml.open(0) if use_cuda else None
    if nvml:
        nvml.start_sampling()

    row = TorchRow(model, opt, train, test, device, graphed, counter, args.batch_size)
    epochs, failure = common.train_epochs(args, plan, row.n, row, nvml, counter)
    splits = {"test": test, "train": train}
    report = common.report(args, backend(device, use_cuda, tuning), env, sum(p.numel() for p in model.parameters()),
                           row.n, test[1].shape[0], setup_seconds, epochs, failure,
                           lambda split: evaluate(model, *splits[split], device),
                           (lambda: torch.cuda.max_memory_allocated(device)) if use_cuda else None,
                           nvml.finish_sampling if nvml else None)
    common.finish(args, report)


if __name__ == "__main__":
    common.run_main(main, "pytorch")
