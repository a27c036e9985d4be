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
