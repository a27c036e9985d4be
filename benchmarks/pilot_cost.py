"""Pilot of the CPU campaign (issue 9), part 1: the per-epoch cost of every role, side by side.

One thread, 10,000 class-balanced CIFAR-10 training images (the JPEG copy or any ImageFolder
archive), batch 250; a training epoch is timed on 1,000 images and scaled by 10, an
evaluation of 20,000 images (train + test) on 2,000 and scaled by 10.

    python benchmarks/pilot_cost.py folder:data/cifar10-jpeg.tar.gz
"""
import sys, time, torch, needle_core as nc
from needle_core.data import load
from needle_core.train import train_epoch, evaluate, make_optimizer, keep_freed_memory
torch.set_num_threads(1); keep_freed_memory()
t=time.time(); d = load(sys.argv[1], root="data", n_train=10000, n_test=None, seed=0, device="cpu"); print("load", time.time()-t, d.x_train.shape, d.x_test.shape)
for w in (32,64):
  torch.manual_seed(0); c = nc.vanilla_cnn(ch=w)
  models = {"cnn": c, "efcn": nc.embed(c,(3,32,32)), "elcn": nc.embed(c,(3,32,32),kind="lc"), "fcn": nc.fcn(c,(3,32,32))}
  for name,m in models.items():
    if w==64 and name!="efcn" and name!="cnn": continue
    opt = make_optimizer(m.parameters(), 0.1)
    x,y = d.x_train[:1000], d.y_train[:1000]
    train_epoch(m,opt,x[:250],y[:250],250,0,0)
    t=time.time(); train_epoch(m,opt,x,y,250,0,1); tr=(time.time()-t)*10
    t=time.time(); evaluate(m,d.x_test[:2000],d.y_test[:2000]); ev=(time.time()-t)*10
    print(f"w{w} {name}: params {sum(p.numel() for p in m.parameters()):,} train epoch(10k) {tr:.1f}s  eval(20k) {ev:.1f}s", flush=True)
