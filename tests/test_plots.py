"""The book's figure style: one colour per role, helpers that draw what they say."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from needle_core import plots  # noqa: E402


def test_roles_have_distinct_colours_and_styles():
    assert set(plots.ROLES) == {"cnn", "efcn", "elcn", "fcn", "cnn_control"}
    colours = [plots.COLORS[r] for r in plots.ROLES]
    assert len(set(colours)) == len(colours)
    assert len({(plots.COLORS[r], plots.LINESTYLES[r]) for r in plots.ROLES}) == len(plots.ROLES)
    with pytest.raises(ValueError, match="unknown role"):
        plots.style("resnet")


def test_band_caption_and_legend():
    plots.use_style()
    assert plt.rcParams["figure.figsize"][0] == plots.WIDTH
    fig, ax = plt.subplots()
    x = np.arange(5)
    for role in plots.ROLES:
        line = plots.band(ax, x, x, x - 1, x + 1, role)
        assert line.get_color() == plots.COLORS[role] and line.get_label() == plots.LABELS[role]
    assert len(ax.collections) == len(plots.ROLES)  # one shaded interval per band
    plots.role_legend(ax, ["cnn", "efcn"])
    text = plots.caption(fig, {"data": "CIFAR-10", "profile": "smoke", "hardware": plots.hardware(),
                               "wall_time": 75, "seeds": 3})
    assert text == (f"data: CIFAR-10 · profile: smoke · hardware: {plots.hardware()} · "
                    "wall time: 1.2 min · seeds: 3")
    assert text in [t.get_text() for t in fig.texts]
    plt.close(fig)


def test_symlog_epochs_labels_do_not_crowd():
    plots.use_style()
    fig, ax = plt.subplots()
    ax.plot([0, 100], [0, 1])
    grid = [0, 1, 2, 3, 4, 5, 6, 8, 11, 14, 18, 23, 29, 37, 48, 61, 78, 100]  # the paper's evaluation epochs
    shown = plots.symlog_epochs(ax, grid)
    assert ax.get_xscale() == "symlog"
    assert shown[0] == 0 and shown[-1] == 100 and 3 <= len(shown) < len(grid)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) == len(grid) and sum(bool(s) for s in labels) == len(shown)
    assert all(s in ("", "0", "1", "100") or s.isdigit() for s in labels)  # integers, no 10^x
    assert len(ax.xaxis.get_minor_locator().tick_values(0, 100)) == 0
    plt.close(fig)


def test_table_html_formats_numbers_for_a_reader():
    import pandas as pd

    from needle_core import report

    frame = pd.DataFrame({"layer": ["conv1", "total"], "weights": [110_606_602, 143_178], "δ": [0.07412, float("nan")],
                          "t_w": [2.0, float("nan")]})
    html = report.table_html(frame, "t")
    assert "110,606,602" in html and "0.074" in html and "–" in html
    assert ">2<" in html and "2.000" not in html
    assert "row_heading" not in html  # no index column
