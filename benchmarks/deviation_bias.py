"""How far the δ stored in a result store are from δ recomputed in fp64 (book page 4).

Before commit b135e8c, ``needle_core.deviation`` summed each layer's off-band squares in one
fp32 reduction over a strided view, which lost a part of them.  For every finished eFCN of a
store whose final weights are on this machine (``final.pt``: only where the campaign ran),
this prints the δ and δ_loc the store recorded at the run's last epoch (the same weights)
beside the same quantities recomputed from ``final.pt`` with the model in fp64, and their
relative difference.

    python benchmarks/deviation_bias.py STORE [STORE ...]
"""
import argparse
from pathlib import Path

import pandas as pd
import torch

import needle_core as nc
from needle_core.store import ResultStore

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("stores", nargs="+")
args = p.parse_args()
torch.set_num_threads(1)
rows = []
for root in args.stores:
    store = ResultStore(root)
    for run in store.finished_runs():
        spec = store.run_provenance(run)
        final = store.run_dir(run) / "final.pt"
        if spec.get("role") != "efcn" or not final.exists():
            continue
        metrics = store.metrics(run)
        last = metrics[metrics["metric"].isin(["delta", "delta_loc"])]
        last = last[last["epoch"] == last["epoch"].max()].set_index(["layer", "metric"])["value"]
        model = nc.embed(nc.cnn(spec["arch"], ch=spec["width"]), (3, 32, 32), "fc")
        model.load_state_dict(torch.load(final, weights_only=False)["model"])
        exact = nc.deviation(model.double()).set_index("layer")
        for layer in ("conv1", "network"):
            for metric in ("delta", "delta_loc"):
                stored, fp64 = float(last[(layer, metric)]), float(exact.loc[layer, metric])
                rows.append(dict(store=Path(root).name, run=run, layer=layer, metric=metric, stored=stored, fp64=fp64,
                                 relative=stored / fp64 - 1))
frame = pd.DataFrame(rows)
with pd.option_context("display.width", 160, "display.max_rows", 200):
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.5f}"))
    print("\nrelative difference (stored / fp64 - 1), by layer and metric:")
    print(frame.groupby(["layer", "metric"])["relative"].agg(["min", "max", "count"]).to_string(float_format=lambda v: f"{v:+.4f}"))
