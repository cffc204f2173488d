"""For tests/keras.rs: the PyTorch reference's model trained with Keras's Adam written out in PyTorch
(epsilon added to √v before the bias correction, as `keras.optimizers.Adam` does, where PyTorch adds
it after), from a plan's weights in its first epoch's order; prints each step's loss as JSON. With it,
the keras row's steps are held to the same arithmetic tightly, and the gap to the other rows is shown
to be that placement of epsilon alone.

    python keras_adam.py PLAN MNIST_DIR MODEL EXAMPLES
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.argv, args = sys.argv[:1], sys.argv[1:]
import lenet_common as common  # noqa: E402
import reference  # noqa: E402


class Data:
    def __init__(self, folder, limit):
        self.data_dir, self.limit = folder, limit


def main():
    plan_path, folder, model_name, examples = args[0], args[1], args[2], int(args[3])
    plan = common.read_safetensors(plan_path)
    model = reference.LeNet2() if model_name == "lenet2" else reference.LeNet3()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in plan.items() if not k.startswith("order.")})
    x, y = common.load_split(Data(folder, examples), "train_images", "train_labels")
    x, y = torch.from_numpy(x).reshape(-1, 1, 28, 28), torch.from_numpy(y)
    order = torch.from_numpy(plan["order.1"].copy())
    params = list(model.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    losses = []
    for t, start in enumerate(range(0, examples, 32), 1):
        idx = order[start:start + 32]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        model.zero_grad()
        loss.backward()
        losses.append(loss.item())
        with torch.no_grad():
            alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            for p, mp, vp in zip(params, m, v):
                mp += (p.grad - mp) * (1 - b1)
                vp += (p.grad * p.grad - vp) * (1 - b2)
                p -= alpha * mp / (vp.sqrt() + eps)
    print(json.dumps(losses))


if __name__ == "__main__":
    main()
