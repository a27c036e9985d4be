"""Pilot of the converged campaign (issue 17): does the trunk converge, when, and is SGD stable
for the FC networks once they fit?  One seed, one thread, 5,000 class-balanced CIFAR-10 images.

For one learning rate of the pre-declared grid (book/preregistration.md, "Converged edition"):
the trunk CNN to t_w = 20 (its state kept), the FCN from scratch and the eFCN switched at
t_w = 20, each FC_EPOCHS in FC space (evaluated every 5), then the trunk on to CNN_EPOCHS
(evaluated every 10).  The pilot of 2026-12-06 ran lr 0.05 with an earlier order of the same
runs (trunk first; its log: benchmarks/pilot-2026-12-06-lr0.05.jsonl).  Every epoch's mean
training loss is recorded, so spikes (an epoch loss more than 0.25 nats above the run's lowest
so far) are counted exactly.
One JSON line per evaluation or epoch goes to stdout.

    python benchmarks/pilot_converged.py folder:data/cifar10-jpeg.tar.gz LR [CNN_EPOCHS FC_EPOCHS] > pilot.jsonl
"""
import json
import sys
import time

import torch

import needle_core as nc
from needle_core.data import load
from needle_core.switch import switch
from needle_core.train import evaluate, keep_freed_memory, make_optimizer, train_epoch

SEED, N_TRAIN, BATCH, CNN_EPOCHS, FC_EPOCHS, T_W = 0, 5000, 250, 200, 60, 20


def log(**row):
    print(json.dumps(row), flush=True)


def fit(name, lr, model, optimizer, first, last, every, data, keep=()):
    kept, t0 = {}, time.monotonic()
    for epoch in range(first, last + 1):
        if epoch in keep:
            kept[epoch] = ({k: v.clone() for k, v in model.state_dict().items()}, optimizer.state_dict())
        if (epoch - first) % every == 0 or epoch == last:
            train_loss, train_acc = evaluate(model, data.x_train, data.y_train)
            test_loss, test_acc = evaluate(model, data.x_test, data.y_test)
            log(run=name, lr=lr, epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss,
                test_acc=test_acc, wall_s=round(time.monotonic() - t0, 1))
        if epoch == last:
            return kept
        loss = float(train_epoch(model, optimizer, data.x_train, data.y_train, BATCH, SEED, epoch))
        log(run=name, lr=lr, epoch=epoch + 1, epoch_loss=loss)
        if loss != loss or loss > 1e3:
            log(run=name, lr=lr, epoch=epoch + 1, diverged=True)
            return kept


def main(dataset, lr, cnn_epochs=CNN_EPOCHS, fc_epochs=FC_EPOCHS):
    """One learning rate of the grid: the trunk to t_w (its state kept), the FCN from scratch and
    the eFCN for ``fc_epochs`` each, then the trunk on to ``cnn_epochs`` (the FC runs first: they
    decide the rule; the trunk's convergence is cheap to finish)."""
    lr, cnn_epochs, fc_epochs = float(lr), int(cnn_epochs), int(fc_epochs)
    torch.set_num_threads(1)
    keep_freed_memory()
    data = load(dataset, root="data", n_train=N_TRAIN, n_test=None, seed=SEED, device="cpu")
    shape = data.input_shape
    torch.manual_seed(SEED)
    trunk = nc.vanilla_cnn(ch=32)
    trunk_optimizer = make_optimizer(trunk.parameters(), lr)
    kept = fit("cnn", lr, trunk, trunk_optimizer, 0, T_W, 10, data, keep=(T_W,))
    torch.manual_seed(SEED)
    fcn = nc.fcn(nc.vanilla_cnn(ch=32), shape)
    fit("fcn", lr, fcn, make_optimizer(fcn.parameters(), lr), 0, fc_epochs, 5, data)
    del fcn
    state, opt_state = kept[T_W]
    cnn = nc.vanilla_cnn(ch=32)
    cnn.load_state_dict(state)
    optimizer = make_optimizer(cnn.parameters(), lr)
    optimizer.load_state_dict(opt_state)
    efcn, optimizer = switch(cnn, optimizer, shape, "fc")
    fit(f"efcn-t{T_W}", lr, efcn, optimizer, T_W, T_W + fc_epochs, 5, data)
    del efcn
    fit("cnn", lr, trunk, trunk_optimizer, T_W, cnn_epochs, 10, data)


if __name__ == "__main__":
    main(*sys.argv[1:])
