"""One figure style for the whole book: colourblind-safe, one fixed colour per role.

Every notebook starts with :func:`use_style` and draws a network kind with ``role=``:

=================  ==============================================================  ==========
role               what it is                                                      line
=================  ==============================================================  ==========
``cnn``            the CNN, trained on at constant settings                        solid
``cnn_control``    the CNN continued from the switch with the eFCN's new settings  dashed
``efcn``           the embedded FCN after the switch                               solid
``elcn``           the embedded locally connected net after the switch             dash-dot
``fcn``            the FCN of the same architecture trained from scratch           dotted
=================  ==============================================================  ==========

Colours come from seaborn's ``colorblind`` palette; the line style repeats the role so a
figure still reads in grey.  :func:`caption` writes under a figure which data, profile,
hardware and wall time produced it.  Nothing here computes a result.
"""
from __future__ import annotations

from typing import Mapping

import matplotlib as mpl
import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.lines import Line2D

PALETTE = sns.color_palette("colorblind")  # 10 colours, safe for the common colour blindnesses

#: One fixed colour per role, the same in every figure of the book.
COLORS = {
    "cnn": PALETTE[0],  # blue
    "cnn_control": PALETTE[9],  # sky blue: a CNN too, continued under the switch's settings
    "efcn": PALETTE[3],  # vermillion
    "elcn": PALETTE[2],  # bluish green
    "fcn": PALETTE[7],  # grey
}
LINESTYLES = {"cnn": "-", "cnn_control": "--", "efcn": "-", "elcn": "-.", "fcn": ":"}
MARKERS = {"cnn": "o", "cnn_control": "s", "efcn": "D", "elcn": "^", "fcn": "v"}
LABELS = {"cnn": "CNN", "cnn_control": "CNN (control)", "efcn": "eFCN", "elcn": "eLCN", "fcn": "FCN"}
ROLES = tuple(COLORS)

#: Diverging colour map for signed weights (zero is white); colourblind-safe.
WEIGHT_CMAP = "RdBu_r"

#: Figure width in inches.  A figure is drawn for a phone first: on a 390-px screen the book's
#: text column is :data:`PHONE_COLUMN` CSS px wide, and a figure :data:`WIDTH` inches wide at
#: :data:`DPI` is shrunk to it, its text with it.  At 4.6 in a 9-pt label is shown 9.3 px tall
#: there (9 pt x 342 / (72 x 4.6)); on a desktop the figure keeps its natural size (506 px).
WIDTH = 4.6
#: Pixels per inch of a figure shown at its natural size (CSS px; the PNG carries twice that).
DPI = 110
#: The text column of the book on a 390-px phone (CSS px), measured in Chromium.
PHONE_COLUMN = 342
#: The smallest text a figure may show on that phone (CSS px): tick labels included.
MIN_TEXT_PX = 9.0

STYLE = {
    "figure.figsize": (WIDTH, WIDTH / 2),
    "figure.dpi": DPI,
    "savefig.dpi": 2 * DPI,
    "savefig.bbox": "tight",
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "legend.frameon": False,
    "image.cmap": "viridis",
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
}


def use_style() -> None:
    """Apply the book's style to matplotlib (call once, at the top of a notebook)."""
    mpl.rcParams.update(STYLE)


def style(role: str) -> dict:
    """Keyword arguments for ``ax.plot`` that draw ``role``: colour, line style, marker, label."""
    if role not in COLORS:
        raise ValueError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}.")
    return dict(color=COLORS[role], linestyle=LINESTYLES[role], marker=MARKERS[role], label=LABELS[role])


def band(ax, x, mean, lo, hi, role: str, label: str | None = None, marker: bool = True, alpha: float = 0.2):
    """Plot ``mean`` against ``x`` as ``role``'s line, with the interval ``[lo, hi]`` shaded
    in the same colour (e.g. a 95% interval over seeds).  Returns the line."""
    kw = style(role)
    if label is not None:
        kw["label"] = label
    if not marker:
        kw.pop("marker")
    (line,) = ax.plot(x, mean, **kw)
    ax.fill_between(x, lo, hi, color=kw["color"], alpha=alpha, linewidth=0)
    return line


def hardware(device=None) -> str:
    """A short description of the machine: the GPU's name for a CUDA ``device``, else the CPU."""
    import torch

    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    from .store import machine

    return f"CPU {machine()['cpu']}, {torch.get_num_threads()} threads"


def _seconds(value) -> str:
    if isinstance(value, str):
        return value
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def caption(fig_or_ax, provenance: Mapping) -> str:
    """Write the figure's provenance in small grey type under the figure and return it.

    ``provenance`` holds ``data`` (what was plotted: data set, subset, architecture, seeds),
    ``profile`` (the run profile, or why there is none), ``hardware`` (see :func:`hardware`)
    and ``wall_time`` (seconds, or a string); any other keys are appended as ``key: value``.
    The text sits below the axes, inside the figure saved with ``bbox_inches="tight"`` (the
    book style and Jupyter's inline backend both save that way).
    """
    fig = fig_or_ax if isinstance(fig_or_ax, plt.Figure) else fig_or_ax.figure
    keys = ("data", "profile", "hardware", "wall_time")
    parts = []
    for key in keys:
        if key in provenance:
            value = _seconds(provenance[key]) if key == "wall_time" else provenance[key]
            parts.append(f"{key.replace('_', ' ')}: {value}")
    parts += [f"{key}: {value}" for key, value in provenance.items() if key not in keys]
    text = " · ".join(parts)
    fig.text(0.0, 0.0, text, ha="left", va="top", fontsize=7, color="0.35", wrap=True,
             transform=fig.transFigure)
    return text


def role_legend(ax, roles, **kwargs):
    """A legend with one entry per role in ``roles`` (for figures whose lines are unlabelled)."""
    handles = [Line2D([], [], **style(role)) for role in roles]
    return ax.legend(handles=handles, **kwargs)


def symlog_epochs(ax, ticks, axis: str = "x", linthresh: float = 1.0, min_gap: float = 0.07) -> list:
    """Make ``axis`` of ``ax`` symmetric-log (linear in ``[0, linthresh]``, logarithmic
    beyond: epoch 0 and the log-spaced evaluation epochs both fit) with a tick at each of
    ``ticks`` and readable labels: integers, no minor ticks, and a label only where it keeps
    ``min_gap`` (a fraction of the axis length) from its labelled neighbours, the first and
    the last always labelled.  Returns the labelled ticks."""
    import numpy as np
    from matplotlib.ticker import NullLocator

    ticks = sorted({float(t) for t in ticks})
    getattr(ax, f"set_{axis}scale")("symlog", linthresh=linthresh)
    where = getattr(ax, f"{axis}axis").get_transform().transform(np.asarray(ticks))
    span = (where[-1] - where[0]) or 1.0
    shown = [0] if ticks else []
    for i in range(1, len(ticks) - 1):
        if where[i] - where[shown[-1]] >= min_gap * span and where[-1] - where[i] >= min_gap * span:
            shown.append(i)
    if len(ticks) > 1:
        shown.append(len(ticks) - 1)
    labels = [f"{t:g}" if i in shown else "" for i, t in enumerate(ticks)]
    getattr(ax, f"set_{axis}ticks")(ticks, labels)
    getattr(ax, f"{axis}axis").set_minor_locator(NullLocator())
    return [ticks[i] for i in shown]


# --- Showing a figure: legible on a phone, the same bytes on every run ----------------------

def smallest_text(fig) -> float:
    """The size (points) of the smallest visible, non-empty text of ``fig``: tick labels, axis
    labels, titles, legends, annotations."""
    fig.draw_without_rendering()
    sizes = [t.get_fontsize() for t in fig.findobj(mpl.text.Text)
             if t.get_visible() and t.get_text().strip() and t.get_figure() is not None]
    return min(sizes) if sizes else float("inf")


def shown_width(fig) -> float:
    """The width (inches) of ``fig`` as saved (``bbox_inches="tight"``)."""
    renderer = fig._get_renderer()  # whatever the canvas (a notebook's, Agg, the base one)
    fig.draw(renderer)
    return fig.get_tightbbox(renderer).width


def phone_text_px(fig) -> float:
    """The height in CSS px of ``fig``'s smallest text on a 390-px phone: its size at
    :data:`DPI`, scaled by the share of its natural width the phone's column leaves it."""
    natural = shown_width(fig) * DPI
    return smallest_text(fig) / 72 * DPI * min(1.0, PHONE_COLUMN / natural)


def png(fig) -> bytes:
    """``fig`` as PNG at twice :data:`DPI` (sharp on HiDPI screens), tight, with no date or
    version in it (the same bytes for the same figure, run after run), and the CSS size of its
    smallest text at natural size recorded as the PNG text ``needle:min-text-css-px`` (the
    browser test reads it)."""
    import io

    text_px = smallest_text(fig) / 72 * DPI
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=2 * DPI, bbox_inches="tight",
                metadata={"Software": None, "needle:min-text-css-px": f"{text_px:.2f}"})
    return buffer.getvalue()


def show(fig, check: bool = True):
    """Display ``fig`` in a notebook at its natural size (half its pixels: the PNG of
    :func:`png`) and close it.  With ``check``, refuse a figure whose smallest text would be
    shown under :data:`MIN_TEXT_PX` CSS px on a phone (:func:`phone_text_px`)."""
    from IPython.display import Image, display

    if check and (px := phone_text_px(fig)) < MIN_TEXT_PX - 1e-6:
        plt.close(fig)
        raise ValueError(f"figure text would be {px:.1f} px on a 390-px phone (< {MIN_TEXT_PX}): "
                         f"make it narrower than {shown_width(fig):.2f} in or its text larger.")
    data = png(fig)
    plt.close(fig)
    display(Image(data=data, format="png", retina=True))
