"""needle_core.analysis on small hand-made tidy frames (no training)."""
import math

import numpy as np
import pandas as pd
import pytest

from needle_core import analysis
from needle_core.store import SPEC_COLUMNS

EPOCHS = (0, 3, 6)


def rows(role, seed, acc, switch_time=None, status="done", epochs=EPOCHS, delta=None, arch="vanilla", lr_after=None):
    """Tidy rows of one run: test_acc ``acc(epoch)`` at ``epochs`` (plus a network δ for
    embedded nets), in the store's columns."""
    suffix = f"-t{switch_time}" if switch_time is not None else ""
    run = f"{arch}-w4-n100-s{seed}/{role}{suffix}"
    kind = {"efcn": "fc", "fcn": "fc", "elcn": "lc", "lcn": "lc"}.get(role)
    spec = dict(run=run, role=role, arch=arch, width=4, n_train=100, seed=seed,
                switch_time=np.nan if switch_time is None else float(switch_time), kind=kind, lr_after=lr_after,
                status=status)
    out = []
    for e in epochs:
        if switch_time is not None and e < switch_time:
            continue
        out.append(dict(spec, epoch=e, metric="test_acc", layer="", value=acc(e) if callable(acc) else acc))
        out.append(dict(spec, epoch=e, metric="train_acc", layer="", value=0.0))
        if delta is not None:
            for layer in ("conv1", "network"):
                out.append(dict(spec, epoch=e, metric="delta", layer=layer, value=delta))
    return out


def frame_of(*groups):
    df = pd.DataFrame([r for g in groups for r in g])
    return df[SPEC_COLUMNS + ["status", "epoch", "metric", "layer", "value"]]


def sweep_frame(efcn_gain=0.05, control=False, seeds=(0, 1, 2), arch="vanilla"):
    """cnn, fcn and efcn at t_w 0, 3 per seed; the eFCN is the CNN + ``efcn_gain`` (+ a seed
    jitter), the FCN is 0.2 below the CNN; with ``control`` a cnn_control 0.1 above the CNN."""
    out = []
    for s in seeds:
        cnn = 0.6 + 0.01 * s
        out += rows("cnn", s, lambda e, c=cnn: c * e / 6, delta=None, arch=arch)
        out += rows("fcn", s, cnn - 0.2, delta=0.99, arch=arch)
        for t in (0, 3):
            out += rows("efcn", s, cnn + efcn_gain + 0.001 * s * (t + 1), switch_time=t, delta=0.02 * (t + 1),
                        lr_after=0.01 if control else None, arch=arch)
            if control:
                out += rows("cnn_control", s, cnn + 0.1, switch_time=t, lr_after=0.01, arch=arch)
    return frame_of(out)


# -- final --------------------------------------------------------------------------------
def test_final_takes_each_runs_last_epoch_and_flags_divergence():
    df = frame_of(rows("cnn", 0, lambda e: e / 10),
                  rows("efcn", 0, lambda e: 0.5 + e / 100, switch_time=3, status="diverged", epochs=(0, 3),
                       delta=0.1))
    out = analysis.final(df, "test_acc")
    assert list(out["run"]) == ["vanilla-w4-n100-s0/cnn", "vanilla-w4-n100-s0/efcn-t3"]
    assert out["epoch"].tolist() == [6, 3]
    assert out["value"].tolist() == pytest.approx([0.6, 0.53])
    assert out["diverged"].tolist() == [False, True]
    assert "metric" not in out.columns


def test_final_per_layer_and_missing_runs_from_provenance():
    df = frame_of(rows("efcn", 0, 0.5, switch_time=0, delta=0.25))
    out = analysis.final(df, "delta")
    assert sorted(out["layer"]) == ["conv1", "network"] and (out["value"] == 0.25).all()
    prov = pd.DataFrame([dict(run="vanilla-w4-n100-s0/efcn-t0", role="efcn", arch="vanilla", width=4, n_train=100,
                              seed=0, switch_time=0.0, kind="fc", lr_after=None, status="done"),
                         dict(run="vanilla-w4-n100-s0/efcn-t4", role="efcn", arch="vanilla", width=4, n_train=100,
                              seed=0, switch_time=4.0, kind="fc", lr_after=None, status="trunk_diverged")])
    out = analysis.final(df, "test_acc", provenance=prov)
    missing = out[out["run"].str.endswith("t4")].iloc[0]
    assert math.isnan(missing["value"]) and missing["diverged"] and missing["status"] == "trunk_diverged"
    assert len(out) == 2


def test_final_of_an_absent_metric_is_empty():
    assert analysis.final(frame_of(rows("cnn", 0, 0.5)), "delta").empty


# -- interval -----------------------------------------------------------------------------
def test_interval_uses_the_t_distribution():
    mean, lo, hi, n = analysis.interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2} · sd / √n, sd = 1
    assert (mean, n) == (2.0, 3)
    assert (lo, hi) == pytest.approx((2 - half, 2 + half))
    _, lo90, hi90, _ = analysis.interval([1.0, 2.0, 3.0], level=0.90)
    assert lo < lo90 < hi90 < hi


def test_interval_edge_cases():
    assert analysis.interval([0.5, 0.5]) == (0.5, 0.5, 0.5, 2)
    mean, lo, hi, n = analysis.interval([0.7, float("nan"), None])
    assert (mean, n) == (0.7, 1) and math.isnan(lo) and math.isnan(hi)
    mean, lo, hi, n = analysis.interval([])
    assert n == 0 and all(math.isnan(v) for v in (mean, lo, hi))


def test_over_seeds_groups_by_role_time_and_epoch():
    out = analysis.over_seeds(sweep_frame(), "test_acc")
    cnn = out[(out["role"] == "cnn") & (out["epoch"] == 6)].iloc[0]
    assert cnn["n"] == 3 and cnn["mean"] == pytest.approx(0.61)
    assert math.isnan(cnn["switch_time"])
    assert len(out[(out["role"] == "efcn") & (out["switch_time"] == 3)]) == 2  # epochs 3 and 6


# -- paired -------------------------------------------------------------------------------
def test_paired_against_the_trunk_when_there_is_no_control():
    out = analysis.paired(sweep_frame(efcn_gain=0.05), "efcn", "control")
    assert (out["against"] == "cnn").all() and out["switch_time"].tolist() == [0.0, 3.0]
    row = out.iloc[1]  # t_w = 3: diff per seed = 0.05 + 0.004 s
    assert row["diffs"] == pytest.approx((0.05, 0.054, 0.058)) and row["seeds"] == (0, 1, 2)
    assert row["mean"] == pytest.approx(0.054) and row["n"] == 3 and row["n_diverged"] == 0
    assert row["lo"] < row["mean"] < row["hi"]
    assert (row["mean"], row["lo"], row["hi"], row["n"]) == pytest.approx(analysis.interval(row["diffs"]))


def test_paired_against_the_controlled_cnn_when_present():
    df = sweep_frame(efcn_gain=0.05, control=True)
    out = analysis.paired(df, "efcn", "control")
    assert (out["against"] == "cnn_control").all()
    assert out["mean"].tolist() == pytest.approx([-0.05 + 0.001, -0.05 + 0.004])  # the control is +0.1
    trunk = analysis.paired(df, "efcn", "cnn")
    assert (trunk["against"] == "cnn").all() and (trunk["mean"] > 0).all()


def test_paired_against_the_fcn_uses_one_fcn_per_seed():
    out = analysis.paired(sweep_frame(efcn_gain=0.0), "efcn", "fcn")
    assert (out["against"] == "fcn").all()
    assert out.iloc[0]["diffs"] == pytest.approx((0.2, 0.201, 0.202))
    assert out.iloc[1]["diffs"] == pytest.approx((0.2, 0.204, 0.208))


def test_paired_leaves_diverged_pairs_out_and_counts_them():
    df = sweep_frame()
    df.loc[df["run"] == "vanilla-w4-n100-s2/efcn-t3", "status"] = "diverged"
    out = analysis.paired(df, "efcn", "fcn").set_index("switch_time")
    assert out.loc[3.0, "n"] == 2 and out.loc[3.0, "n_diverged"] == 1 and len(out.loc[3.0, "diffs"]) == 3
    assert out.loc[0.0, "n"] == 3 and out.loc[0.0, "n_diverged"] == 0


def test_paired_errors_name_the_missing_role():
    with pytest.raises(ValueError, match="elcn"):
        analysis.paired(sweep_frame(), "elcn", "control")
    with pytest.raises(ValueError, match="lcn"):
        analysis.paired(sweep_frame(), "efcn", "lcn")
    with pytest.raises(ValueError, match="against"):
        analysis.paired(sweep_frame(), "efcn", "resnet")


# -- describe and claims ------------------------------------------------------------------
def provenance_of(df):
    prov = df.drop_duplicates("run")[SPEC_COLUMNS + ["status"]].copy()
    return prov.assign(wall_time_s=2.0, device="cpu: test")


CONFIG = dict(name="handmade", dataset="synthetic", n_trains=[100], n_test=100, archs=["vanilla"], widths=[4],
              seeds=[0, 1, 2], epochs=6, lr=0.1, lr_after=None)


def test_describe_gives_the_caption_fields():
    df = sweep_frame()
    info = analysis.describe(provenance_of(df), CONFIG)
    assert info["profile"] == "handmade" and info["hardware"] == "cpu: test"
    assert info["wall_time"] == 2.0 * df["run"].nunique()
    assert "synthetic (100 train / 100 test)" in info["data"] and "3 seeds" in info["data"]
    assert analysis.describe(provenance_of(df), CONFIG, runs=["vanilla-w4-n100-s0/cnn"])["wall_time"] == 2.0


@pytest.fixture(scope="module")
def scorecards():
    good = sweep_frame(efcn_gain=0.05)
    bad = sweep_frame(efcn_gain=-0.05)
    return (analysis.claims(good, provenance_of(good), CONFIG).set_index("claim"),
            analysis.claims(bad, provenance_of(bad), CONFIG).set_index("claim"))


def test_claims_table_has_every_claim_and_its_provenance(scorecards):
    good, _ = scorecards
    assert list(good.index) == [1, 2, 3, 4, 5, 6, 7]
    for column in ("paper", "measured", "interval", "reproduces", "rule", "profile", "data", "hardware", "wall_time"):
        assert good[column].notna().all(), column
    assert good.loc[1, "reproduces"] == "yes"  # exact embedding, from needle_core
    assert good.loc[7, "reproduces"] == "yes" and "772.5×" in good.loc[7, "measured"]
    assert good.loc[2, "reproduces"] == good.loc[6, "reproduces"] == "not tested"
    assert good.loc[4, "profile"] == "handmade" and good.loc[4, "wall_time"] == 2.0 * 9  # 3 seeds × (fcn + 2 efcn)


def test_claims_verdicts_follow_the_stated_rules(scorecards):
    good, bad = scorecards
    assert good.loc[3, "reproduces"] == "yes" and "0.080 at t_w=3" in good.loc[3, "measured"]
    assert good.loc[4, "reproduces"] == "yes"  # +0.25 at every t_w, tight interval
    assert good.loc[5, "reproduces"] == "yes"  # beats the trunk CNN at t_w = 3
    assert "trunk CNN" in good.loc[5, "rule"]
    assert bad.loc[5, "reproduces"] == "no"  # below the CNN at every t_w > 0: said plainly
    assert bad.loc[4, "reproduces"] == "yes"  # still 0.15 above the FCN
    assert "chance 0.100" in good.loc[4, "note"] and "says nothing" not in good.loc[4, "note"]


def test_claims_partly_when_the_interval_reaches_zero():
    df = sweep_frame(efcn_gain=0.01)
    noisy = df["role"].eq("efcn") & df["seed"].eq(0) & df["metric"].eq("test_acc")
    df.loc[noisy, "value"] -= 0.02  # seed 0 below its CNN, seeds 1-2 above: mean > 0, CI across 0
    card = analysis.claims(df, provenance_of(df), CONFIG).set_index("claim")
    assert card.loc[5, "reproduces"] == "partly"


def test_claims_flag_a_cnn_at_chance():
    df = sweep_frame()
    df.loc[df["metric"].eq("test_acc"), "value"] = 0.1
    card = analysis.claims(df, provenance_of(df), CONFIG).set_index("claim")
    assert "says nothing" in card.loc[4, "note"] and card.loc[5, "reproduces"] == "no"


def test_sizes_are_the_papers():
    assert analysis.sizes("vanilla", 64) == {"cnn": 143_178, "efcn": 110_606_602, "elcn": 7_797_002}
    assert analysis.sizes("alexnet", 64)["efcn"] == 239_049_674


def test_claim_7_is_only_partly_true_of_alexnet():
    """AlexNet's eFCN is 84 times the CNN, not "hundreds of times": said, not hidden."""
    df = sweep_frame(arch="alexnet")
    card = analysis.claims(df, provenance_of(df), dict(CONFIG, archs=["alexnet"])).set_index("claim")
    assert card.loc[7, "reproduces"] == "partly" and "83.9×" in card.loc[7, "measured"]
    assert card.loc[1, "reproduces"] == "yes" and card.loc[7, "configuration"].startswith("alexnet w4")


def test_claims_with_diverged_runs():
    """A diverged pair caps its switch time at partly; an eFCN diverged everywhere fails."""
    some = sweep_frame()
    some.loc[some["run"] == "vanilla-w4-n100-s2/efcn-t3", "status"] = "diverged"
    card = analysis.claims(some, provenance_of(some), CONFIG).set_index("claim")
    assert card.loc[[3, 4, 5], "reproduces"].tolist() == ["partly"] * 3
    assert "(1 diverged)" in card.loc[4, "measured"] and "diverged" in card.loc[4, "rule"]
    everywhere = sweep_frame()
    everywhere.loc[everywhere["role"] == "efcn", "status"] = "diverged"
    card = analysis.claims(everywhere, provenance_of(everywhere), CONFIG).set_index("claim")
    assert card.loc[[3, 4, 5], "reproduces"].tolist() == ["no"] * 3
    assert card.loc[1, "reproduces"] == card.loc[7, "reproduces"] == "yes"
