"""needle_core.analysis on small hand-made tidy frames (no training)."""
import math
from pathlib import Path

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


def sweep_frame(efcn_gain=0.05, control=False, seeds=(0, 1, 2), arch="vanilla", switch_times=(0, 3)):
    """cnn, fcn and efcn at ``switch_times`` per seed; the eFCN is the CNN + ``efcn_gain`` (+ a
    seed jitter; a callable gives the gain of ``(seed, t_w)``), the FCN is 0.2 below the CNN;
    with ``control`` a cnn_control 0.1 above the CNN."""
    out = []
    for s in seeds:
        cnn = 0.6 + 0.01 * s
        out += rows("cnn", s, lambda e, c=cnn: c * e / 6, delta=None, arch=arch)
        out += rows("fcn", s, cnn - 0.2, delta=0.99, arch=arch)
        for t in switch_times:
            gain = efcn_gain(s, t) if callable(efcn_gain) else efcn_gain + 0.001 * s * (t + 1)
            out += rows("efcn", s, cnn + gain, switch_time=t, delta=0.02 * (t + 1),
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



# -- the read-out -------------------------------------------------------------------------
READOUT_EPOCHS = (0, 10, 16, 17, 18, 19, 20)


def test_readout_window_is_the_last_fifth_of_the_budget():
    from needle_core.config import make_config

    assert make_config("cpu").readout_epochs == [17, 18, 19, 20]
    df = frame_of(rows("cnn", 0, lambda e: e / 100, epochs=READOUT_EPOCHS))
    assert analysis.readout_epochs(make_config("cpu")) == [17, 18, 19, 20]
    assert analysis.readout_epochs({"epochs": 20, "readout": 0.2}) == [17, 18, 19, 20]
    assert analysis.readout_epochs(None, df) == [17, 18, 19, 20]  # the pre-registered 20% of the frame's budget
    assert analysis.readout_epochs({"epochs": 6}) == [5, 6]  # the smoke profile: 20% of 6 epochs
    assert analysis.readout_epochs([20, 19]) == [19, 20]


def _with_train(group, train):
    return [dict(r, value=train(r["epoch"])) if r["metric"] == "train_acc" else r for r in group]


def test_convergence_reads_the_train_accuracy_across_the_readout_window():
    """The pre-registered rule: flat when the training accuracy changes by less than 0.01 between
    the window's first and last evaluation; a trunk also at 0.99 or more at the largest t_w; a
    diverged run is never flat."""
    df = frame_of(_with_train(rows("cnn", 0, 0.5, epochs=READOUT_EPOCHS), lambda e: 0.5 if e < 10 else 0.99 + e / 10_000),
                  _with_train(rows("cnn", 1, 0.5, epochs=READOUT_EPOCHS), lambda e: 0.98 if e <= 10 else 0.999),
                  _with_train(rows("fcn", 0, 0.4, epochs=READOUT_EPOCHS), lambda e: 0.9 - (e - 17) / 50),
                  rows("efcn", 0, 0.3, switch_time=10, status="diverged", epochs=(10, 16, 17)))
    out = analysis.convergence(df, {"epochs": 20, "readout": 0.2}).set_index("run")
    cnn0, cnn1 = out.loc["vanilla-w4-n100-s0/cnn"], out.loc["vanilla-w4-n100-s1/cnn"]
    assert cnn0["flat"] and cnn0["change"] == pytest.approx(0.0003) and cnn0["evals"] == 4
    assert cnn0["reached"] == 10 and cnn0["at_largest"] == pytest.approx(0.991) and cnn0["converged"]
    assert cnn1["flat"] and cnn1["reached"] == 16 and not cnn1["converged"]  # 0.98 at t_w = 10: flat, not converged
    fcn, efcn = out.loc["vanilla-w4-n100-s0/fcn"], out.loc["vanilla-w4-n100-s0/efcn-t10"]
    assert not fcn["flat"] and fcn["change"] == pytest.approx(-0.06) and not fcn["converged"]
    assert not efcn["flat"] and efcn["diverged"] and not efcn["converged"]  # one evaluation in the window
    assert (analysis.FLAT, analysis.TRUNK_ACCURACY) == (0.01, 0.99)


def test_convergence_table_keeps_the_whole_training_set():
    """n_train None (the paper profile: every training image) is a configuration, not a gap."""
    from types import SimpleNamespace

    from needle_core import report

    df = frame_of(_with_train(rows("cnn", 0, 0.5, epochs=READOUT_EPOCHS), lambda e: 0.995),
                  rows("fcn", 0, 0.4, epochs=READOUT_EPOCHS))
    df["n_train"] = None
    page = SimpleNamespace(frame=df, config=SimpleNamespace(readout_epochs=[17, 18, 19, 20], switch_times=[10]),
                           runs=None, label="read-out")
    table = report.convergence_table(page)
    assert list(table["role"]) == ["CNN", "FCN"] and list(table["converged"]) == [1, 1]
    assert table["n_train"].isna().all() and "at the largest t_w 0.995" in table["per_seed"].iloc[0]


def test_readout_label_names_the_window():
    from needle_core.config import make_config

    assert analysis.readout_label(make_config("cpu")) == "read-out (mean over epochs 17–20)"
    assert analysis.readout_label(make_config("smoke")) == "read-out (mean over epochs 5–6)"
    assert analysis.readout_label({"epochs": 6, "readout": 0.0}) == "read-out (epoch 6)"
    assert analysis.readout_label([20, 16, 18]) == "read-out (mean over epochs 16, 18, 20)"


def test_readout_intervals_over_seeds_leave_diverged_runs_out_and_count_them():
    ends = pd.DataFrame(dict(role=["cnn"] * 4, readout=[0.5, 0.6, 0.7, np.nan], last=[0.4, 0.5, 0.9, 0.1],
                             diverged=[False, False, False, True]))
    [row] = analysis.readout_intervals(ends, ["role"]).to_dict("records")
    mean, lo, hi, n = analysis.interval([0.5, 0.6, 0.7])
    assert (row["n"], row["diverged"]) == (3, 1) and row["last"] == pytest.approx(0.6)  # the diverged run's 0.1 out
    assert (row["mean"], row["lo"], row["hi"]) == pytest.approx((mean, lo, hi))


def test_readout_is_the_mean_over_the_window_beside_the_last_epoch():
    df = frame_of(rows("cnn", 0, lambda e: e / 100, epochs=READOUT_EPOCHS),
                  rows("efcn", 0, lambda e: e / 100, switch_time=10, status="diverged", epochs=(10, 16, 17),
                       delta=0.3))
    out = analysis.readout(df, "test_acc", {"epochs": 20, "readout": 0.2}).set_index("run")
    cnn, efcn = out.loc["vanilla-w4-n100-s0/cnn"], out.loc["vanilla-w4-n100-s0/efcn-t10"]
    assert cnn["readout"] == pytest.approx((0.17 + 0.18 + 0.19 + 0.20) / 4) and cnn["last"] == 0.20
    assert cnn["evals"] == 4 and not cnn["diverged"]
    assert math.isnan(efcn["readout"]) and efcn["diverged"] and efcn["last"] == 0.17  # flagged, never averaged
    narrow = analysis.readout(df, "test_acc", [19, 20]).set_index("run")
    assert narrow.loc["vanilla-w4-n100-s0/cnn", "readout"] == pytest.approx(0.195)
    deltas = analysis.readout(df, "delta", [17])
    assert sorted(deltas["layer"]) == ["conv1", "network"] and deltas["readout"].isna().all()


def test_paired_uses_the_readout_and_reports_the_last_epoch_beside_it():
    df = frame_of(*[rows(role, s, lambda e, s=s, g=g: 0.5 + g + 0.01 * s + (0.05 if e == 20 else 0),
                         epochs=READOUT_EPOCHS)
                    for s in (0, 1, 2) for role, g in (("cnn", 0.0), ("fcn", -0.1))],
                  *[rows("efcn", s, lambda e, s=s: 0.55 + 0.02 * s + (0.2 if e == 20 else 0), switch_time=10,
                         epochs=READOUT_EPOCHS) for s in (0, 1, 2)])
    out = analysis.paired(df, "efcn", "fcn", window={"epochs": 20}).iloc[0]
    # read-out: efcn 0.55 + 0.02 s + 0.2/4, fcn 0.4 + 0.01 s + 0.05/4; last epoch: +0.2 and +0.05
    assert out["mean"] == pytest.approx(0.15 + 0.01 + 0.0375) and out["last"] == pytest.approx(0.16 + 0.15)
    assert out["sd"] == pytest.approx(0.01)


# -- statistics of the verdicts -----------------------------------------------------------
def test_detectable_effect_by_hand():
    # n = 5, s = 0.02: (t_{0.975,4} + t_{0.80,4}) · s / √5, quantiles from a t table
    assert analysis.detectable(0.02, 5) == pytest.approx((2.776445 + 0.940965) * 0.02 / math.sqrt(5), rel=1e-6)
    # at the Bonferroni level over 4 switch times the first quantile becomes t_{1 - 0.0125/2, 4}
    from scipy import stats

    assert analysis.detectable(0.02, 5, alpha=0.05 / 4) == pytest.approx(
        (stats.t.ppf(1 - 0.0125 / 2, 4) + 0.940965) * 0.02 / math.sqrt(5), rel=1e-6)
    assert math.isnan(analysis.detectable(0.02, 1))


def stats_of(means, sd=0.02, n=5, times=None):
    """A per-switch-time frame as analysis.per_switch_time gives it."""
    times = times or list(range(1, len(means) + 1))
    return pd.DataFrame(dict(switch_time=times, mean=means, sd=sd, n=n, n_diverged=0))


@pytest.mark.parametrize("means, verdict", [
    ((0.10, 0.08, 0.12), "reproduces"),  # every interval above 0
    ((0.10, -0.10, 0.12), "contradicted"),  # one corrected interval below 0 is enough against "all"
    ((0.10, 0.01, 0.12), "inconclusive"),  # one interval across 0, none below
])
def test_all_rule_is_symmetric(means, verdict):
    assert analysis.decide(stats_of(means), analysis.RULES[4])["verdict"] == verdict


def test_some_rule_corrects_for_the_switch_times_it_looks_at():
    """Claim 5: one t_w whose 95% interval (not its Bonferroni 98.75% one) clears 0 is the
    maximum of noise: inconclusive, where the largest mean read as chosen in advance says yes."""
    curse = stats_of([0.0, -0.005, 0.03, 0.0])
    lo, _ = analysis.t_interval(0.03, 0.02, 5, 0.95)
    assert lo > 0  # the winner alone looks significant
    decision = analysis.decide(curse, analysis.RULES[5])
    assert decision["verdict"] == "inconclusive" and "98.75%" in decision["reason"]
    assert analysis.decide(stats_of([0.0, -0.005, 0.1, 0.0]), analysis.RULES[5])["verdict"] == "reproduces"
    assert analysis.decide(stats_of([-0.1, -0.1, -0.08, -0.2]), analysis.RULES[5])["verdict"] == "contradicted"
    assert analysis.decide(stats_of([-0.1, -0.1, 0.0, -0.2]), analysis.RULES[5])["verdict"] == "inconclusive"


def test_rules_without_intervals_decide_nothing():
    assert analysis.decide(stats_of([0.1, 0.1], n=1), analysis.RULES[4])["verdict"] == "inconclusive"
    assert analysis.decide(stats_of([]), analysis.RULES[4])["verdict"] == "inconclusive"


def test_claim_3_contradicted_by_one_large_deviation():
    assert analysis.decide(stats_of([0.1, 0.2]), analysis.RULES[3])["verdict"] == "reproduces"
    assert analysis.decide(stats_of([0.1, 0.9]), analysis.RULES[3])["verdict"] == "contradicted"
    assert analysis.decide(stats_of([0.1, 0.49]), analysis.RULES[3])["verdict"] == "inconclusive"


# -- the claims, on synthetic frames ------------------------------------------------------
WINDOW = [5, 6]
NOISE = {0: 0.06, 1: -0.07, 2: 0.01}  # eFCN − CNN per seed: mean ≈ 0, spread ±0.07


def accuracy_verdict(df, claim, prov=None):
    return analysis.accuracy_claim(df, prov, WINDOW, claim, "test_acc", 0.1)


@pytest.mark.parametrize("gain, verdict", [(0.05, "reproduces"), (-0.3, "contradicted"),
                                           (lambda s, t: NOISE[s] - 0.2, "inconclusive")])
def test_claim_4_win_loss_and_noise(gain, verdict):
    out = accuracy_verdict(sweep_frame(efcn_gain=gain), 4)
    assert out["verdict"] == verdict and out["n"] == 3
    assert "no run diverged" in out["sensitivity"] and "99.17%" not in out["test"]  # 2 t_w: 97.5%
    assert "97.5% (Bonferroni over 2 t_w)" in out["test"] and "t_w=3:" in out["detectable"]


def test_claim_5_tests_the_intermediate_switch_times_only():
    # grid 0, 3, 5: only t_w = 3 is intermediate; the eFCN loses at 0 and 5, wins at 3
    df = sweep_frame(efcn_gain=lambda s, t: 0.1 + 0.001 * s if t == 3 else -0.3, switch_times=(0, 3, 5))
    out = accuracy_verdict(df, 5)
    assert out["verdict"] == "reproduces" and out["estimate"].startswith("t_w=3:") and "t_w=0" not in out["estimate"]
    assert "trunk CNN" in out["test"]
    noise = accuracy_verdict(sweep_frame(efcn_gain=lambda s, t: NOISE[s], switch_times=(0, 3, 5)), 5)
    assert noise["verdict"] == "inconclusive"
    assert accuracy_verdict(sweep_frame(), 5)["verdict"] == "not measured"  # grid 0, 3: none intermediate


@pytest.mark.parametrize("arm2_gain, arm2_verdict, verdict", [
    (0.2, "reproduces", "conflicting"), (-0.2, "contradicted", "contradicted"),
    (lambda s, t: 0.1 + NOISE[s], "inconclusive", "contradicted")])
def test_claim_5_over_two_arms_shows_conflict_as_conflict(arm2_gain, arm2_verdict, verdict):
    # Arm 1 loses to its trunk CNN at the intermediate t_w 3 (contradicted alone); arm 2's
    # eFCN is the CNN + gain and its controlled CNN the CNN + 0.1, at t_w 2, 3 (intermediate), 5.
    # Significant in opposite directions: conflicting, never "reproduces"; otherwise the
    # paper's protocol (arm 1) decides.
    arm1 = sweep_frame(efcn_gain=-0.3, switch_times=(0, 3, 5))
    arm2 = sweep_frame(efcn_gain=arm2_gain, control=True, switch_times=(2, 3, 5))
    alone = analysis.claims(arm1, provenance_of(arm1), CONFIG).set_index("claim").loc[5]
    assert alone["verdict"] == "contradicted"
    card = analysis.claims(arm1, provenance_of(arm1), CONFIG,
                           arm2=(arm2, provenance_of(arm2), dict(CONFIG, lr_after=0.01, switch_times=[2, 3, 5]))).set_index("claim")
    five = card.loc[5]
    assert five["verdict"] == verdict and five["reason"].startswith(f"arm 1 contradicted, arm 2 {arm2_verdict}")
    assert five["arms"] == f"arm 1 (paper's protocol): contradicted · arm 2 (lr changed at the switch): {arm2_verdict}"
    assert five["test"].split("both arms: ")[1].startswith("post hoc reading")
    # each arm keeps its own Bonferroni correction: 1 intermediate t_w in arm 1, 2 in arm 2
    arm1_test, arm2_test = five["test"].split(" ‖ ")[:2]
    assert "trunk CNN" in arm1_test and "95% (Bonferroni over 1 t_w)" in arm1_test
    assert "controlled CNN" in arm2_test and "97.5% (Bonferroni over 2 t_w)" in arm2_test
    assert five["estimate"].count("t_w=3:") == 2 and "t_w=2:" in five["estimate"] and five["n"] == 3
    assert five["wall_time"] == 2.0 * (3 + 9) + 2.0 * (9 + 9)  # arm 1: 3 trunks, 9 eFCN; arm 2: 9 eFCN, 9 controls
    assert (card.drop(index=5)["verdict"] == analysis.claims(arm1, provenance_of(arm1), CONFIG)
            .set_index("claim").drop(index=5)["verdict"]).all()  # the second arm decides claim 5 only
    assert five["sensitivity"].startswith(f"both arms with diverged runs at chance: {verdict} ‖ ")
    assert "no run spiked" in five["sensitivity"]
    assert five["profile"] == "arm 1: handmade ‖ arm 2: handmade"


def test_claim_5_in_an_arm_still_running_keeps_the_registered_grid_and_baseline():
    # Arm 2's sweep has t_w 2 and 3 of its grid 2, 3, 5: both stay intermediate (97.5%), t_w 3 is
    # not taken for the last; without its controlled CNN the arm is not measured, never
    # compared with the constant-lr trunk instead.
    arm1 = sweep_frame(efcn_gain=-0.3, switch_times=(0, 3, 5))
    arm2 = sweep_frame(efcn_gain=0.2, control=True, switch_times=(2, 3))
    cfg2 = dict(CONFIG, lr_after=0.01, switch_times=[2, 3, 5])
    five = analysis.claims(arm1, provenance_of(arm1), CONFIG,
                           arm2=(arm2, provenance_of(arm2), cfg2)).set_index("claim").loc[5]
    assert five["verdict"] == "conflicting" and "97.5% (Bonferroni over 2 t_w)" in five["test"]
    no_control = arm2[arm2["role"] != "cnn_control"]
    five = analysis.claims(arm1, provenance_of(arm1), CONFIG,
                           arm2=(no_control, provenance_of(no_control), cfg2)).set_index("claim").loc[5]
    assert five["verdict"] == "inconclusive" and "arm 2 not measured" in five["reason"]
    assert "cnn_control" in five["reason"] and five["reason"].count("trunk CNN") == 0


def test_a_diverged_seed_is_left_out_counted_and_recounted_at_chance():
    df = sweep_frame(efcn_gain=0.05)
    run = "vanilla-w4-n100-s2/efcn-t3"
    df = df[~((df["run"] == run) & (df["epoch"] == 6))]
    df.loc[df["run"] == run, "status"] = "diverged"
    out = accuracy_verdict(df, 4, provenance_of(df))
    assert out["verdict"] == "reproduces" and out["n"] == 2 and "1 diverged" in out["estimate"]
    # at chance (0.1) the pair is 0.1 − 0.42 = −0.32: the interval at t_w = 3 now crosses 0
    assert out["sensitivity"].startswith("1 pair(s) with a diverged run, counted at chance (0.100): inconclusive")


def test_a_diverged_trunk_leaves_its_branches_to_the_sensitivity_line():
    df = sweep_frame(efcn_gain=0.05)
    gone = df["seed"].eq(2) & df["role"].isin(["cnn", "efcn"])
    prov = provenance_of(df)
    prov.loc[prov["seed"].eq(2) & prov["role"].eq("cnn"), "status"] = "diverged"
    prov.loc[prov["seed"].eq(2) & prov["role"].eq("efcn"), "status"] = "trunk_diverged"
    out = accuracy_verdict(df[~gone], 4, prov)
    assert out["n"] == 2 and out["sensitivity"].startswith("2 pair(s)")


def test_claim_3_from_the_readout_of_delta():
    out = analysis.deviation_claim(sweep_frame(), None, WINDOW)
    assert out["verdict"] == "reproduces" and "FCN from scratch: δ 0.990" in out["note"]
    large = sweep_frame()
    large.loc[large["role"].eq("efcn") & large["metric"].eq("delta") & large["switch_time"].eq(3), "value"] = 0.8
    assert analysis.deviation_claim(large, None, WINDOW)["verdict"] == "contradicted"


def landscape_of(barriers, other=0.5):
    """String eFCN → FCN barriers ``barriers[t_w][seed]`` (nats), and linear ones at ``other``."""
    return pd.DataFrame([dict(seed=s, switch_time=t, path=path, method=method,
                              barrier=b if (path, method) == ("efcn-fcn", "string") else other)
                         for t, per_seed in barriers.items() for s, b in enumerate(per_seed)
                         for path in ("cnn-efcn", "efcn-fcn") for method in ("linear", "string")])


@pytest.mark.parametrize("barriers, verdict", [
    # the rule met: still inconclusive, post hoc (no control; issue 18)
    ({2: [0.3, 0.32, 0.31], 8: [0.2, 0.22, 0.25]}, "inconclusive"),
    ({2: [0.01, 0.0, 0.02], 8: [0.0, 0.01, 0.0]}, "contradicted"),
    ({2: [0.3, 0.32, 0.31], 8: [0.0, 0.01, 0.0]}, "inconclusive"),  # one basin apart, one not
])
def test_claim_6_from_the_string_barriers(barriers, verdict):
    out = analysis.landscape_claim(landscape_of(barriers), dict(arch="vanilla", width=4, n_train=100))
    assert out["verdict"] == verdict and out["n"] == 3
    assert "linear efcn-fcn barrier" in out["note"] and "described, not tested" in out["note"]
    assert analysis.landscape_claim(None, {})["verdict"] == "not measured"


# -- the scorecard ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scorecard():
    df = sweep_frame(efcn_gain=0.05, switch_times=(0, 3, 5))
    land = landscape_of({0: [0.3, 0.32, 0.31], 3: [0.2, 0.22, 0.25]})
    return analysis.claims(df, provenance_of(df), CONFIG, landscape=land,
                           landscape_seconds=lambda cfg: dict(string=5266.7, curve=0.0)).set_index("claim")


def test_scorecard_has_every_claim_its_words_and_its_provenance(scorecard):
    assert list(scorecard.index) == [1, 2, 3, 4, 5, 6, 7]
    assert list(scorecard.reset_index().columns) == analysis.COLUMNS
    assert set(scorecard["verdict"]) <= set(analysis.VERDICTS)
    for column in ("abstract", "reading", "test", "estimate", "verdict", "page", "profile", "data", "hardware"):
        assert scorecard[column].notna().all(), column
    assert scorecard.loc[[1, 3, 4, 5, 7], "verdict"].tolist() == ["reproduces"] * 5
    assert scorecard.loc[6, "verdict"] == "inconclusive"  # the uncontrolled barrier rule met (post hoc)
    assert scorecard.loc[2, "verdict"] == "not a claim"
    assert scorecard.loc[4, "profile"] == "handmade" and scorecard.loc[4, "wall_time"] == 2.0 * 12  # fcn + 3 efcn
    assert scorecard.loc[6, "wall_time"] == 5266.7  # decided by the string: its measuring time
    assert scorecard.loc[1, "abstract"].startswith("(our summary, not a quote)")
    assert "chance 0.100" in scorecard.loc[4, "note"] and "says nothing" not in scorecard.loc[4, "note"]


def test_the_abstract_column_quotes_the_abstract_exactly():
    for claim in (3, 4, 5, 7):
        for piece in analysis.ABSTRACT[claim].strip('"').split(" ... "):
            assert piece in analysis.ABSTRACT_QUOTE, (claim, piece)
    assert analysis.ABSTRACT[6].strip('"') in analysis.READING[6]  # the paper's words, quoted in the reading
    for words in analysis.ABSTRACT.values():  # none of the additions the issue found
        assert "t_w = 0" not in words and "inverted U" not in words and "hundreds" not in words


def test_claims_flag_a_cnn_at_chance():
    df = sweep_frame()
    df.loc[df["metric"].eq("test_acc"), "value"] = 0.1
    assert "says nothing" in analysis._learned(df, WINDOW, "test_acc", 0.1)


def test_sizes_are_the_papers():
    assert analysis.sizes("vanilla", 64) == {"cnn": 143_178, "efcn": 110_606_602, "elcn": 7_797_002}
    assert analysis.sizes("alexnet", 64)["efcn"] == 239_049_674


def test_claim_7_holds_for_alexnet_at_its_84x():
    """AlexNet's eFCN is 84 times the CNN: "very large" in the abstract's words (the notes'
    "hundreds of times" was not the abstract's)."""
    out = analysis.size_claim(dict(arch="alexnet", width=4))
    assert out["verdict"] == "reproduces" and "83.9×" in out["estimate"]


def test_a_second_arm_without_runs_leaves_claim_5_open():
    arm1 = sweep_frame(efcn_gain=-0.3, switch_times=(0, 3, 5))  # contradicted on its own
    empty = arm1.iloc[:0]
    five = analysis.claims(arm1, provenance_of(arm1), CONFIG,
                           arm2=(empty, empty, CONFIG)).set_index("claim").loc[5]
    assert five["verdict"] == "inconclusive" and five["reason"].startswith("arm 1 contradicted, arm 2 not measured")


def test_spikes_compare_every_training_loss_after_the_start_with_the_loss_at_the_start():
    def losses(role, seed, values, switch_time=None):
        # train_loss evaluated at even epochs from the start, epoch_loss after every epoch
        start = switch_time or 0
        out = []
        for k, v in enumerate(values):
            out += [dict(r, metric="epoch_loss", value=v) for r in rows(role, seed, 0.5, switch_time, epochs=(start + k + 1,))
                    if r["metric"] == "test_acc"]
            if k % 2 == 0:
                out += [dict(r, metric="train_loss", value=v) for r in rows(role, seed, 0.5, switch_time, epochs=(start + k,))
                        if r["metric"] == "test_acc"]
        return out

    df = frame_of(losses("efcn", 0, [1.0, 0.9, 0.8, 0.7], switch_time=2),  # falls: no spike
                  losses("efcn", 1, [1.0, 0.9, 1.2, 0.7], switch_time=2),  # rises above its start
                  losses("fcn", 0, [2.3, 2.0, 1.5, 1.0]))
    out = analysis.spikes(df).set_index("run")
    assert not out.loc["vanilla-w4-n100-s0/efcn-t2", "spiked"]
    assert out.loc["vanilla-w4-n100-s1/efcn-t2", "spiked"] and out.loc["vanilla-w4-n100-s1/efcn-t2", "peak_loss"] == 1.2
    assert not out.loc["vanilla-w4-n100-s0/fcn", "spiked"]
    assert out.loc["vanilla-w4-n100-s0/fcn", "start_loss"] == 2.3


def test_claim_6_met_without_a_control_is_not_called_reproduced():
    barriers = pd.DataFrame([dict(seed=s, switch_time=t, path="efcn-fcn", method="string", barrier=0.8 + 0.01 * s)
                             for s in range(3) for t in (2, 8)])
    out = analysis.landscape_claim(barriers, dict(arch="vanilla", width=4, n_train=100))
    assert out["verdict"] == "inconclusive"
    assert "pre-registered rule is met" in out["reason"] and "no control" in out["reason"]


def test_a_campaign_still_training_gets_pending_verdicts_with_its_interim_reading():
    # Deciding on the seeds that have landed would be optional stopping: every sampled claim is
    # "pending" (its interim reading kept, labelled), the computed ones keep their verdicts, and
    # claim 5 is pending when either arm is still training.
    arm1 = sweep_frame(efcn_gain=-0.3, switch_times=(0, 3, 5))
    arm2 = sweep_frame(efcn_gain=0.2, control=True, switch_times=(2, 3, 5))
    cfg2 = dict(CONFIG, lr_after=0.01, switch_times=[2, 3, 5])
    done = analysis.claims(arm1, provenance_of(arm1), CONFIG, arm2=(arm2, provenance_of(arm2), cfg2))
    why = "campaign in progress: 9 of 12 runs landed"
    card = analysis.claims(arm1, provenance_of(arm1), CONFIG, arm2=(arm2, provenance_of(arm2), cfg2, None),
                           in_progress=why).set_index("claim")
    assert (card.loc[[3, 4, 5], "verdict"] == "pending").all()
    assert card.loc[4, "reason"].startswith(why + ": the pre-registered test decides once every run has landed; "
                                            "interim reading, not a verdict: ")
    assert card.loc[4, "reason"].endswith(f"{done.set_index('claim').loc[4, 'verdict']} "
                                          f"({done.set_index('claim').loc[4, 'reason']})")
    assert (card.loc[[1, 2, 7], "verdict"] == done.set_index("claim").loc[[1, 2, 7], "verdict"]).all()
    assert card.loc[6, "verdict"] == "not measured"  # nothing sampled to wait for
    only_arm2 = analysis.claims(arm1, provenance_of(arm1), CONFIG,
                                arm2=(arm2, provenance_of(arm2), cfg2, why)).set_index("claim")
    assert only_arm2.loc[5, "verdict"] == "pending" and "arm 2 (lr changed at the switch): pending" in only_arm2.loc[5, "arms"]
    assert only_arm2.loc[4, "verdict"] == done.set_index("claim").loc[4, "verdict"]  # arm 1 complete: decided
    assert analysis.pending({"verdict": "reproduces", "reason": "x"}, None) == {"verdict": "reproduces", "reason": "x"}
    assert set(card["verdict"]) <= set(analysis.VERDICTS)


def test_claim_6_comes_from_the_trained_curves_when_there_are_some():
    df = sweep_frame()
    rows = [dict(pair="efcn-fcn", seed=s, other=s, switch_time=3, method="curve", barrier=0.9 + 0.01 * s)
            for s in range(3)]
    rows += [dict(pair="fcn-fcn", seed=s, other=(s + 1) % 3, switch_time=None, method="curve", barrier=0.1)
             for s in range(3)]
    curves = pd.DataFrame(rows).assign(arch="vanilla", width=4, n_train=100)
    six = analysis.claims(df, provenance_of(df), CONFIG, curves=curves).set_index("claim").loc[6]
    assert six["verdict"] == "reproduces" and "Garipov" in six["test"]
    assert analysis.claims(df, provenance_of(df), CONFIG).set_index("claim").loc[6, "verdict"] == "not measured"


def test_what_a_training_campaign_planned_but_has_not_measured_is_pending():
    # Claim 6 of an edition that plans trained curves is pending while they are measured (not
    # "not measured"), and an empty second arm still training leaves claim 5 pending.
    arm1 = sweep_frame(efcn_gain=-0.3, switch_times=(0, 3, 5))
    cfg = dict(CONFIG, landscape_switch_times=[3])
    six = analysis.claims(arm1, provenance_of(arm1), cfg, curves_in_progress="trained curves in progress: 0 of 5"
                          ).set_index("claim").loc[6]
    assert six["verdict"] == "pending" and six["reason"].startswith("trained curves in progress: 0 of 5")
    assert six["reason"].endswith("too little measured yet for an interim reading") and "not measured" not in six["reason"]
    empty = arm1.iloc[:0]
    five = analysis.claims(arm1, provenance_of(arm1), CONFIG, arm2=(empty, provenance_of(arm1).iloc[:0],
                                                                    dict(CONFIG, lr_after=0.01), "in progress")
                           ).set_index("claim").loc[5]
    assert five["verdict"] == "pending" and "arm 2 (lr changed at the switch): pending" in five["arms"]


def test_an_arm_at_one_lower_lr_throughout_is_compared_with_its_own_trunk():
    # The converged edition's arm 2 trains every network at lr 0.05: no controlled CNN exists
    # or is needed, so claim 5 compares its eFCN with its own trunk CNN (an arm that changes
    # the lr at the switch keeps its controlled CNN: test above).
    arm1 = sweep_frame(efcn_gain=-0.3, switch_times=(0, 3, 5))
    arm2 = sweep_frame(efcn_gain=0.2, switch_times=(2, 3, 5))
    five = analysis.claims(arm1, provenance_of(arm1), CONFIG,
                           arm2=(arm2, provenance_of(arm2), dict(CONFIG, lr=0.05, switch_times=[2, 3, 5]))
                           ).set_index("claim").loc[5]
    assert five["verdict"] == "conflicting" and five["arms"].endswith(": reproduces")
    assert five["test"].split(" ‖ ")[1].count("trunk CNN") == 1


def test_a_conflict_between_switch_times_gets_a_post_hoc_reading_beside_the_registered_verdict():
    # Both arms beat their CNN at t_w 3; arm 2 also loses at t_w 1 and 2. The registered joint rule
    # says conflicting and stays the verdict; a reading labelled post hoc says where the
    # conflict lies. A conflict between protocols (arm 1 below, arm 2 above) gets none.
    win_at_3 = lambda s, t: 0.1 + 0.001 * s if t == 3 else -0.3  # noqa: E731
    arm1 = sweep_frame(efcn_gain=win_at_3, switch_times=(0, 3, 5))
    arm2 = sweep_frame(efcn_gain=win_at_3, switch_times=(1, 2, 3, 5))
    card = analysis.claims(arm1, provenance_of(arm1), CONFIG,
                           arm2=(arm2, provenance_of(arm2), dict(CONFIG, lr=0.05, switch_times=[1, 2, 3, 5])))
    five = card.set_index("claim").loc[5]
    assert five["verdict"] == "conflicting" and five["arms"].count("reproduces") == 2
    assert five["post_hoc"].startswith("post hoc (written after the data were seen")
    assert "t_w = 3 in arm 1 and at t_w = 3 in arm 2" in five["post_hoc"] and "(arm 2 at t_w = 1, 2)" in five["post_hoc"]
    assert (card.set_index("claim").drop(index=5)["post_hoc"] == "").all()
    # Both arms reproduce, but at t_w 2 arm 1 is above 0 where arm 2 is below: a conflict between the arms
    win_at_2_3 = lambda s, t: 0.1 + 0.001 * s if t in (2, 3) else -0.3  # noqa: E731
    arm1_at_2 = sweep_frame(efcn_gain=win_at_2_3, switch_times=(0, 2, 3, 5))
    five = analysis.claims(arm1_at_2, provenance_of(arm1_at_2), CONFIG,
                           arm2=(arm2, provenance_of(arm2), dict(CONFIG, lr=0.05, switch_times=[1, 2, 3, 5]))
                           ).set_index("claim").loc[5]
    assert five["verdict"] == "conflicting" and five["arms"].count("reproduces") == 2 and five["post_hoc"] == ""
    opposite = sweep_frame(efcn_gain=-0.3, switch_times=(0, 3, 5))
    five = analysis.claims(opposite, provenance_of(opposite), CONFIG,
                           arm2=(arm2, provenance_of(arm2), dict(CONFIG, lr=0.05, switch_times=[1, 2, 3, 5]))
                           ).set_index("claim").loc[5]
    assert five["verdict"] == "conflicting" and five["post_hoc"] == ""


def test_the_converged_findings_state_what_the_rules_read():
    """report.findings_converged on synthetic arms: claim 5's lists use the test's Bonferroni
    level over the intermediate t_w (2 here: 97.5%), claim 4's the 95% interval at every t_w;
    ranges read as words; the seeds say how many of the registered ones have landed; a missing
    second arm leaves its keys out rather than guessing them."""
    from needle_core import report
    from needle_core.config import SweepConfig

    gain = lambda s, t: 0.1 + 0.001 * s if t == 3 else -0.3  # noqa: E731  (wins at 3 only)
    frame = sweep_frame(efcn_gain=gain, switch_times=(0, 2, 3, 5))
    config = SweepConfig(name="handmade", dataset="synthetic", n_trains=[100], archs=["vanilla"], widths=[4],
                         seeds=[0, 1, 2], epochs=6, switch_times=[0, 2, 3, 5], lr=0.1)
    results = report.Results("handmade", Path("."), config, frame, provenance_of(frame),
                             progress=report.Progress(20, 16, (0, 1, 2, 3), (0, 1, 2), (0, 1, 2), 0, 0, 0, 0))
    card = analysis.claims(frame, provenance_of(frame), config)
    out = report.findings_converged(results, None, card, pd.DataFrame())
    assert out["arm1-cnn-level"] == "97.5%" and out["arm1-cnn-above"] == "3" and out["arm1-cnn-below"] == "2"
    assert out["arm1-cnn-range"] == "−0.300 to +0.101"
    assert out["arm1-fcn-above"] == "3" and out["arm1-fcn-below"] == "0, 2, 5" and out["arm1-fcn-best-tw"] == "3"
    assert out["arm1-seeds"] == "4 (3 landed so far)" and out["post-hoc-5"] == ""
    assert not any(key.startswith("arm2-") for key in out) and out["verdict-5"] == card.set_index("claim").verdict[5]
    # test accuracy along the curves: the rule's pairs counted apart from those that only describe
    along = lambda pair, barrier, low, t=None: dict(pair=pair, method="curve", barrier=barrier,  # noqa: E731
                                                    switch_time=t, test_acc_a=0.55, test_acc_b=0.50, test_acc_min=low)
    curves = pd.DataFrame([along("efcn-fcn", 0.0, 0.495, 3), along("efcn-fcn", 0.0, 0.499, 3), along("fcn-fcn", 0.0, 0.50),
                           along("cnn-cnn", 0.003, 0.39),
                           along("cnn-cnn", 0.001, 0.41), along("efcn-efcn", 0.002, 0.45, 3),
                           dict(along("efcn-fcn", 1.5, 0.1, 3), method="linear")])
    with_curves = report.findings_converged(results, None, card, curves)
    assert with_curves["curves"] == 3 and with_curves["curve-acc-drop"] == pytest.approx(0.005)  # the largest, not the mean
    # mean 0.100 over two pairs, t(0.975, 1) · 0.01414 / √2 = 0.127 either side; one pair has no interval
    assert with_curves["curve-acc-describing"] == (
        "On the curves that only describe, the test accuracy lost below the worse end (mean over the pairs of seeds, "
        "95% t-interval) is 0.050 (one pair: no interval) along eFCN ↔ eFCN at t_w = 3 (n = 1, barrier 0.002 nats); "
        "0.100 [−0.027, 0.227] along CNN ↔ CNN (n = 2, barrier 0.001 to 0.003 nats).")
    assert out["curve-acc-describing"] == "No curve that only describes has been measured yet."  # no curves at all
    # ranges in words: equal values say how many agree, one value stands alone, none says so
    assert [report._span(v, 3) for v in ([0.0, 0.0, 0.0], [1.25], [0.5, 1.25], [])] == \
        ["0.000 (all 3)", "1.250", "0.500 to 1.250", "none"]
    assert [report._signed_span(pd.DataFrame({"mean": v})) for v in ([0.0, 0.0], [-0.1, 0.2])] == \
        ["+0.000 (all 2)", "−0.100 to +0.200"]


def test_editions_table_puts_each_claims_verdicts_side_by_side(monkeypatch):
    """One row per claim of either card; each edition's verdict (and its arms) in its column, a
    dash where an edition has no row for the claim; a card per claim on a phone (data-label)."""
    from IPython.display import HTML

    from needle_core import report

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    converged = pd.DataFrame(dict(claim=[1, 5], verdict=["reproduces", "pending"], configuration=["c"] * 2,
                                  arms=["", "arm 1 (paper's protocol): reproduces · arm 2: pending"]))
    early = pd.DataFrame(dict(claim=[1, 5, 6], verdict=["reproduces", "conflicting", "inconclusive"],
                              configuration=["e"] * 3, arms=["", "arm 1: inconclusive · arm 2: reproduces", ""]))
    report.editions_table({"converged": converged, "cpu": early})
    [table] = shown
    assert isinstance(table, HTML)
    rows = table.data.split("<tr>")[2:]  # after the header row
    assert len(rows) == 3
    assert "conflicting" in rows[1] and "arm 2: pending" in rows[1] and 'data-label="20-epoch edition"' in rows[1]
    assert '<td data-label="converged edition">–</td>' in rows[2] and "inconclusive" in rows[2]


def test_claim_6_counts_curve_tasks_with_a_diverged_endpoint():
    """A tested or control task whose endpoint diverged has no barrier: the claim's sensitivity
    line counts it (it is left out of n, never silently)."""
    cfg = {"arch": "vanilla", "width": 4, "n_train": 100}
    curves = pd.DataFrame([dict(cfg, pair=p, seed=s, other=o, switch_time=t, method="curve", barrier=b)
                           for p, s, o, t, b in (("efcn-fcn", 0, 0, 3, 0.2), ("efcn-fcn", 1, 1, 3, 0.3),
                                                 ("fcn-fcn", 0, 1, np.nan, 0.1))])
    records = pd.DataFrame([dict(cfg, pair=p, seed=s, other=o, switch_time=t, status=st)
                            for p, s, o, t, st in (("efcn-fcn", 0, 0, 3, "done"), ("efcn-fcn", 1, 1, 3, "done"),
                                                   ("fcn-fcn", 0, 1, np.nan, "done"),
                                                   ("efcn-fcn", 2, 2, 3, "endpoint_diverged"),
                                                   ("efcn-efcn", 1, 2, 3, "endpoint_diverged"))])
    six = analysis.curve_barrier_claim(curves, cfg, None, [3], records)
    assert "1 tested and 1 control curve tasks had a diverged endpoint" in six["sensitivity"]
    assert "diverged endpoint" not in analysis.curve_barrier_claim(curves, cfg, None, [3], records.iloc[:3])["sensitivity"]


def test_an_amendment_is_read_beside_the_registered_verdicts_never_in_their_place():
    """report.amendment_reading: while an amended run is missing it gives no verdict (optional
    stopping), then each seeded claim's verdict with the registered one beside it where they
    differ; claim 6 stays on the curves' seeds; an amendment without new seeds is refused."""
    from needle_core import report
    from needle_core.config import SweepConfig

    def results(seeds, progress=None):
        config = SweepConfig(name="handmade", dataset="synthetic", seeds=list(seeds), switch_times=[0, 3], epochs=6,
                             landscape_switch_times=[3], landscape_seeds=[0, 1, 2])
        return report.Results("handmade", Path("."), config, pd.DataFrame(), pd.DataFrame(), progress=progress)

    card = lambda verdicts: pd.DataFrame(dict(claim=[1, 3, 4, 5, 6], verdict=verdicts))  # noqa: E731
    registered = card(["reproduces", "inconclusive", "inconclusive", "conflicting", "contradicted"])
    done = report.Progress(30, 30, (0, 1, 2, 3, 4), (0, 1, 2, 3, 4), (0, 1, 2, 3, 4), 0, 0, 0, 0)
    training = report.Progress(30, 22, (0, 1, 2, 3, 4), (0, 1, 2, 3), (0, 1, 2), 0, 0, 0, 0)
    three, five = results([0, 1, 2]), results([0, 1, 2, 3, 4], done)

    # the amended card's verdicts are never read while a run is missing, whatever they say
    waiting = report.amendment_reading(registered, card(["reproduces", "reproduces", "reproduces", "reproduces",
                                                         "contradicted"]), three, results([0, 1, 2, 3], training))
    assert "Seeds 3 and 4 of arm 1" in waiting and "22 of 30 runs landed" in waiting
    assert "claim 3" not in waiting and "**" not in waiting and "registered verdicts stand" in waiting
    assert "trained curves of seeds 0-2" in waiting

    same = report.amendment_reading(registered, registered, three, five)
    assert "Over seeds 0-4" in same and "claim 3: **inconclusive**" in same and "claim 6" not in same.split("Over")[1]
    assert "It agrees with the registered verdict on every claim." in same and "not a calibrated verdict" in same

    moved = report.amendment_reading(
        registered, card(["reproduces", "reproduces", "inconclusive", "reproduces", "contradicted"]), three, five)
    assert "claim 3: **reproduces** (registered: inconclusive)" in moved
    assert "claim 4: **inconclusive**;" in moved and "differs from the registered verdict on claims 3, 5." in moved

    with pytest.raises(ValueError, match="every registered seed and more"):
        report.amendment_reading(registered, registered, three,
                                 results([0, 1, 2], report.Progress(18, 18, (0, 1, 2), (0, 1, 2), (0, 1, 2), 0, 0, 0, 0)))
    with pytest.raises(ValueError, match="needs its progress"):  # loaded without in_progress: a half seed unseen
        report.amendment_reading(registered, registered, three, results([0, 1, 2, 3, 4]))
    assert [report.seed_list(s) for s in ([0, 1, 2], [3, 4], [0, 2, 5], [7])] == ["0-2", "3 and 4", "0, 2, 5", "7"]
