"""Pilot of the CPU campaign (issue 9), part 2: the trunk CNN (VanillaCNN w32, lr 0.1, batch
250, 10,000 images, one thread) trained for 40 epochs, its train and test accuracy every 2
epochs: where does it level off, and how far apart are two seeds?

    python benchmarks/pilot_trunk.py folder:data/cifar10-jpeg.tar.gz 0
"""
import time, torch, needle_core as nc, sys
from needle_core.data import load
from needle_core.train import train_epoch, evaluate, make_optimizer
torch.set_num_threads(1)
seed=int(sys.argv[2])
d = load(sys.argv[1], root="data", n_train=10000, n_test=None, seed=seed, device="cpu")
torch.manual_seed(seed); m = nc.vanilla_cnn(ch=32); opt = make_optimizer(m.parameters(), 0.1)
for e in range(1,41):
    train_epoch(m,opt,d.x_train,d.y_train,250,seed,e-1)
    if e%2==0:
        tl,ta=evaluate(m,d.x_train,d.y_train); sl,sa=evaluate(m,d.x_test,d.y_test)
        print(f"seed {seed} epoch {e} train_acc {ta:.3f} test_acc {sa:.3f} train_loss {tl:.3f}", flush=True)
