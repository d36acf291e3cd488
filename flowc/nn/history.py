"""Training history: one row per epoch, written as CSV and drawn as a loss/metric plot
(PNG with matplotlib when it is installed, else an SVG written here)."""
from __future__ import annotations

import csv
import html
import importlib.util
import io
import math
import os


class History:
    """Columns (epoch, loss, metrics, val_*, seconds) of equal length, one entry per epoch."""

    def __init__(self, columns=None):
        self.columns = {k: list(v) for k, v in (columns or {}).items()}

    def append(self, row):
        """Add one epoch's values; a new column is padded with NaN for earlier epochs."""
        n = len(self)
        for k in row:
            self.columns.setdefault(k, [math.nan] * n)
        for k, v in self.columns.items():
            v.append(float(row.get(k, math.nan)))

    def __len__(self):
        return len(next(iter(self.columns.values()), []))

    def __getitem__(self, key):
        return self.columns[key]

    def __contains__(self, key):
        return key in self.columns

    def as_dict(self):
        """The columns as a dict of lists."""
        return {k: list(v) for k, v in self.columns.items()}

    def last(self):
        """The latest epoch's row as a dict."""
        return {k: v[-1] for k, v in self.columns.items()} if len(self) else {}

    def to_csv(self, path):
        """Write the history as CSV (header: the column names) atomically; return the path."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        keys = list(self.columns)
        w.writerow(keys)
        for i in range(len(self)):
            w.writerow([_num(self.columns[k][i], k) for k in keys])
        _write_text(path, buf.getvalue())
        return path

    def plot(self, path_stem, title="training history"):
        """Draw loss and metrics per epoch to PATH_STEM.png (matplotlib) or .svg; return path."""
        panels = _panels(self)
        if importlib.util.find_spec("matplotlib") is not None:
            return _plot_matplotlib(self, panels, path_stem + ".png", title)
        return _plot_svg(self, panels, path_stem + ".svg", title)


def _num(v, key):
    if key == "epoch":
        return int(v)
    return "nan" if math.isnan(v) else repr(round(v, 10))


def _panels(h):
    """[(title, [(column, label), ...])]: the loss, then each metric with its val_ twin."""
    names = [k for k in h.columns if k not in ("epoch", "seconds") and not k.startswith("val_")]
    panels = []
    for k in names:
        lines = [(c, lab) for c, lab in ((k, "train"), ("val_" + k, "held-out")) if c in h]
        panels.append((k, lines))
    return panels


def _write_text(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _plot_matplotlib(h, panels, path, title):
    # The object-oriented API: no pyplot, so no global backend or figure state is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    n = max(len(panels), 1)
    fig = Figure(figsize=(5 * n, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (name, lines) in zip(axes, panels):
        for col, label in lines:
            ax.plot(h["epoch"], h[col], marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


def _ticks(lo, hi, n=5):
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int(math.ceil((hi - first) / step)) + 1)]


def _plot_svg(h, panels, path, title):
    """A small hand-written SVG: one panel per quantity, train and held-out lines."""
    pw, ph, ml, mr, mt, mb = 360, 240, 56, 16, 40, 44
    width = pw * max(len(panels), 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{ph + 30}" '
           f'viewBox="0 0 {width} {ph + 30}" font-family="Helvetica, Arial, sans-serif" '
           f'font-size="11">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14" '
           f'font-weight="bold">{html.escape(title)}</text>']
    epochs = h["epoch"]
    for i, (name, lines) in enumerate(panels):
        x0, y0 = i * pw + ml, 30 + mt
        w, hh = pw - ml - mr, ph - mt - mb
        vals = [v for c, _ in lines for v in h[c] if math.isfinite(v)]
        yt = _ticks(min(vals, default=0.0), max(vals, default=1.0))
        xt = _ticks(min(epochs, default=0), max(epochs, default=1))
        xt = [t for t in xt if float(t).is_integer()] or xt
        ylo, yhi, xlo, xhi = yt[0], yt[-1], xt[0], xt[-1]

        def sx(v):
            return x0 + (v - xlo) / ((xhi - xlo) or 1) * w

        def sy(v):
            return y0 + hh - (v - ylo) / ((yhi - ylo) or 1) * hh
        out.append(f'<text x="{x0}" y="{y0 - 10}" font-size="12" '
                   f'font-weight="bold">{html.escape(name)}</text>')
        out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{hh}" fill="none" '
                   f'stroke="#999"/>')
        for t in yt:
            out.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
                       f'stroke="#eee"/><text x="{x0 - 4}" y="{sy(t) + 4:.1f}" '
                       f'text-anchor="end">{t:.4g}</text>')
        for t in xt:
            out.append(f'<text x="{sx(t):.1f}" y="{y0 + hh + 14}" text-anchor="middle">'
                       f'{t:g}</text>')
        out.append(f'<text x="{x0 + w / 2}" y="{y0 + hh + 30}" text-anchor="middle">epoch'
                   f'</text>')
        for j, (col, label) in enumerate(lines):
            c = _COLORS[j % len(_COLORS)]
            pts = " ".join(f"{sx(e):.1f},{sy(v):.1f}" for e, v in zip(epochs, h[col])
                           if math.isfinite(v))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
            # The legend sits above the frame, right-aligned: it never hides a line.
            lx = x0 + w - 150 + 80 * j
            out.append(f'<line x1="{lx}" x2="{lx + 16}" y1="{y0 - 14}" y2="{y0 - 14}" '
                       f'stroke="{c}" stroke-width="2"/>'
                       f'<text x="{lx + 20}" y="{y0 - 10}">{html.escape(label)}</text>')
    out.append("</svg>")
    _write_text(path, "\n".join(out) + "\n")
    return path
