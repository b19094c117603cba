"""Figures of training runs: one run's ``curves.png`` and overlays of several runs.

A run directory holds (the contract between the trainer and these functions):

* ``config.json``: the run's configuration; ``env``, ``seed`` and ``label`` (or ``recipe``)
  are read when present, at the top level or one level down, and tolerated when absent;
* ``evals.csv``: header ``step,return_mean,return_std,return_min,return_max,wall_time``,
  ``step`` in agent steps;
* ``diagnostics.csv`` (optional): header ``step,<module>/<metric>,...`` such as
  ``encoder/stable_rank`` or ``critic/dormant_ratio``; empty cells are missing values.

Files may be read while the trainer appends to them: incomplete rows are skipped, and a
step written twice (a resumed run) keeps its last row. Figures are written atomically
(temporary file, then :func:`os.replace`), so a reader never sees half a PNG.

Several runs sharing a label (seeds of one configuration) are aggregated by
:func:`aggregate_curves`: the mean over seeds with a two-sided Student-t confidence interval.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "AggregatedCurve",
    "RunData",
    "aggregate_curves",
    "load_run",
    "plot_run",
    "plot_runs",
    "t_critical",
]

EVAL_COLUMNS = ("step", "return_mean", "return_std", "return_min", "return_max", "wall_time")

# Diagnostics panels: title -> {metric suffix: line style}; a suffix not listed gets its own panel.
_FAMILIES: dict[str, dict[str, str]] = {
    "Stable rank": {"stable_rank": "-"},
    "Dormant ratio": {"dormant_ratio": "-"},
    "Norms (solid: parameters, dashed: gradients)": {"param_norm": "-", "grad_norm": "--"},
    "Sparsity (solid) / mask change (dashed)": {"sparsity": "-", "mask_change": "--"},
}
_METRIC_ORDER = [suffix for styles in _FAMILIES.values() for suffix in styles]
_MODULE_ORDER = ["encoder", "critic", "actor"]
_DPI = 110


# ----------------------------------------------------------------------------- reading runs


@dataclass(frozen=True)
class RunData:
    """The parsed content of one run directory.

    Attributes:
        path: the run directory.
        config: ``config.json`` as a dict (empty when the file is absent).
        evals: column name -> ``float64`` array of ``evals.csv``, sorted by ``step``.
        diagnostics: column name -> ``float64`` array of ``diagnostics.csv`` (``step`` included,
            missing cells as NaN), sorted by ``step``; empty when the file is absent.
    """

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    evals: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)

    def config_value(self, key: str) -> Any:
        """``config[key]``, else the first nested dict's ``[key]``, else ``None``."""
        if key in self.config:
            return self.config[key]
        for value in self.config.values():
            if isinstance(value, dict) and key in value:
                return value[key]
        return None

    def label(self, label_by: str = "label") -> str:
        """Name of the configuration this run is a seed of.

        The first of ``config[label_by]``, ``config["label"]``, ``config["recipe"]`` that is
        set (a dict counts through its ``"name"``), else the directory name without a trailing
        seed suffix (``dog-mst-s0`` -> ``dog-mst``).
        """
        for key in dict.fromkeys((label_by, "label", "recipe")):
            value = self.config_value(key)
            if isinstance(value, dict):
                value = value.get("name")
            if value is not None and not isinstance(value, (dict, list)):
                return str(value)
        return re.sub(r"[-_.](s|seed)\d+$", "", self.path.name) or self.path.name

    @property
    def metric_columns(self) -> list[str]:
        """Diagnostics columns (all but ``step``), in panel order."""
        return _sort_metrics(c for c in self.diagnostics if c != "step")


def _parse_cell(cell: str | None) -> float:
    if cell is None:
        return math.nan
    cell = cell.strip()
    if not cell:
        return math.nan
    try:
        return float(cell)
    except ValueError:
        return math.nan


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    """Columns of a CSV with a ``step`` column: floats, rows sorted by step, last row per step."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return {}
        header = [h.strip() for h in header]
        if "step" not in header:
            raise ValueError(f"{path} has no 'step' column (header: {header}).")
        rows = [row for row in reader if len(row) == len(header)]  # drops a half-written row
    table = np.array([[_parse_cell(c) for c in row] for row in rows], dtype=np.float64)
    table = table.reshape(-1, len(header))
    steps = table[:, header.index("step")]
    table = table[~np.isnan(steps)]
    # last occurrence of each step wins: reverse, keep first unique, restore order
    _, first_in_reversed = np.unique(table[::-1, header.index("step")], return_index=True)
    table = table[::-1][first_in_reversed]
    return {name: table[:, i] for i, name in enumerate(header)}


def load_run(run_dir: str | os.PathLike[str]) -> RunData:
    """Read a run directory (see the module docstring for its files).

    Args:
        run_dir: the directory written by ``torchrl-mst train --out``.

    Returns:
        The :class:`RunData`; files that do not exist yet give empty fields.

    Raises:
        FileNotFoundError: if ``run_dir`` is not a directory, or holds none of
            ``config.json``, ``evals.csv``, ``diagnostics.csv``.
        ValueError: if a CSV has no ``step`` column or ``config.json`` is not a JSON object.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory {str(path)!r} does not exist.")
    files = {name: path / name for name in ("config.json", "evals.csv", "diagnostics.csv")}
    if not any(f.is_file() for f in files.values()):
        raise FileNotFoundError(
            f"{str(path)!r} is not a run directory: it holds none of {sorted(files)}."
        )
    config: dict[str, Any] = {}
    if files["config.json"].is_file():
        config = json.loads(files["config.json"].read_text())
        if not isinstance(config, dict):
            raise ValueError(f"{files['config.json']} must hold a JSON object.")
    evals = _read_csv(files["evals.csv"]) if files["evals.csv"].is_file() else {}
    diagnostics = _read_csv(files["diagnostics.csv"]) if files["diagnostics.csv"].is_file() else {}
    return RunData(path=path, config=config, evals=evals, diagnostics=diagnostics)


def _split_metric(column: str) -> tuple[str, str]:
    """``"critic/dormant_ratio"`` -> ``("critic", "dormant_ratio")``; no slash: no module."""
    module, _, suffix = column.rpartition("/")
    return module, suffix


def _module_of(column: str) -> str:
    return _split_metric(column)[0]


def _sort_metrics(columns: Iterable[str]) -> list[str]:
    def key(column: str) -> tuple[int, str, int, str]:
        module, suffix = _split_metric(column)
        m = _METRIC_ORDER.index(suffix) if suffix in _METRIC_ORDER else len(_METRIC_ORDER)
        o = _MODULE_ORDER.index(module) if module in _MODULE_ORDER else len(_MODULE_ORDER)
        return m, suffix, o, module

    return sorted(set(columns), key=key)


# ----------------------------------------------------------------------------- statistics


def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2 == 0:
        # sin(theta) * sum_{j=0}^{df/2-1} b_j cos^{2j}, b_j = b_{j-1} (2j-1) / (2j)
        term, total = 1.0, 1.0
        for j in range(1, df // 2):
            term *= (2 * j - 1) / (2 * j) * c * c
            total += term
        return s * total
    if df == 1:
        return 2.0 * theta / math.pi
    # (2/pi) (theta + sin(theta) sum_{j=0}^{(df-3)/2} a_j cos^{2j+1}), a_j = a_{j-1} 2j / (2j+1)
    term = total = c
    for j in range(1, (df - 1) // 2):
        term *= (2 * j) / (2 * j + 1) * c * c
        total += term
    return 2.0 / math.pi * (theta + s * total)


def t_critical(confidence: float, df: int) -> float:
    """Two-sided critical value of Student's t: the ``t`` with ``P(|T| <= t) = confidence``.

    Computed by bisection on the closed-form CDF for integer degrees of freedom, so it
    needs no SciPy. ``t_critical(0.95, 2) = 4.3027`` (three seeds).

    Args:
        confidence: coverage of the interval, in ``(0, 1)``.
        df: degrees of freedom, a positive int (``n - 1`` for ``n`` samples).

    Returns:
        The critical value, e.g. the 97.5% quantile for ``confidence=0.95``.

    Raises:
        ValueError: if ``confidence`` is outside ``(0, 1)`` or ``df < 1``.

    Example:
        >>> round(t_critical(0.95, 2), 4), round(t_critical(0.95, 30), 4)
        (4.3027, 2.0423)
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}.")
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df must be an int >= 1, got {df!r}.")
    df = int(df)
    lo, hi = 0.0, 1.0
    while _t_two_sided_mass(hi, df) < confidence:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_two_sided_mass(mid, df) < confidence:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class AggregatedCurve:
    """Mean and confidence band of several seeds' curves on one step grid.

    Attributes:
        steps: the grid, ``[T]``.
        mean: mean over the seeds covering each step, ``[T]``.
        lo: lower end of the confidence interval, ``[T]``; NaN where fewer than 2 seeds.
        hi: upper end, ``[T]``; NaN where fewer than 2 seeds.
        n: number of seeds covering each step, ``[T]`` (int).
    """

    steps: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: np.ndarray


def aggregate_curves(
    curves: Sequence[tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]],
    *,
    confidence: float = 0.95,
    grid: Literal["union", "intersection"] = "union",
) -> AggregatedCurve:
    r"""Mean over seeds with a two-sided Student-t confidence interval, step by step.

    Each seed's curve is a pair ``(steps, values)``; NaN values are dropped first. The grid
    is the union of all seeds' steps (``grid="union"``) or the steps every seed has
    (``"intersection"``). At a grid step :math:`t`, seed :math:`i` contributes
    :math:`y_i(t)`, linearly interpolated between its two nearest steps, only when :math:`t`
    lies within its own first and last step (no extrapolation: a seed that stopped early
    drops out). With :math:`n` contributing seeds, sample mean :math:`\bar y` and sample
    standard deviation :math:`s` (``ddof=1``):

    .. math::

        \bar y \pm t_{(1+c)/2,\;n-1}\, \frac{s}{\sqrt{n}},

    :math:`c` the ``confidence`` and :math:`t_{q,\nu}` the :math:`q`-quantile of Student's
    t with :math:`\nu` degrees of freedom (:func:`t_critical`). With fewer than two
    seeds at a step the interval is undefined and ``lo``/``hi`` are NaN there.

    Args:
        curves: one ``(steps, values)`` pair per seed; within a pair, steps are distinct.

    Keyword Args:
        confidence: coverage of the interval in ``(0, 1)``; 0.95 by default.
        grid: ``"union"`` (default) or ``"intersection"`` of the seeds' steps.

    Returns:
        The :class:`AggregatedCurve` (empty arrays when no seed has a value).

    Raises:
        ValueError: on an empty ``curves``, mismatched lengths, a repeated step within a
            seed, an unknown ``grid`` or a ``confidence`` outside ``(0, 1)``.

    Example:
        >>> agg = aggregate_curves([([0, 10], [1.0, 2.0]), ([0, 10], [3.0, 6.0])])
        >>> agg.mean.tolist(), agg.n.tolist()
        ([2.0, 4.0], [2, 2])
    """
    if grid not in ("union", "intersection"):
        raise ValueError(f"grid must be 'union' or 'intersection', got {grid!r}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}.")
    if len(curves) == 0:
        raise ValueError("curves is empty: pass one (steps, values) pair per seed.")
    seeds = []
    for i, (steps, values) in enumerate(curves):
        x = np.asarray(steps, dtype=np.float64).ravel()
        y = np.asarray(values, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(f"curve {i}: {x.size} steps but {y.size} values.")
        keep = ~(np.isnan(x) | np.isnan(y))
        x, y = x[keep], y[keep]
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        if np.any(np.diff(x) == 0):
            raise ValueError(f"curve {i} repeats a step; keep one value per step.")
        if x.size:
            seeds.append((x, y))
    if not seeds:
        empty = np.empty(0)
        return AggregatedCurve(empty, empty, empty, empty, np.empty(0, dtype=np.int64))
    if grid == "union":
        steps_grid = np.unique(np.concatenate([x for x, _ in seeds]))
    else:
        steps_grid = seeds[0][0]
        for x, _ in seeds[1:]:
            steps_grid = np.intersect1d(steps_grid, x)
    table = np.full((len(seeds), steps_grid.size), np.nan)
    for row, (x, y) in zip(table, seeds):
        inside = (steps_grid >= x[0]) & (steps_grid <= x[-1])
        row[inside] = np.interp(steps_grid[inside], x, y)
    covered = ~np.isnan(table)
    n = covered.sum(axis=0)
    mean = np.nansum(table, axis=0) / np.maximum(n, 1)
    lo = np.full(steps_grid.size, np.nan)
    hi = np.full(steps_grid.size, np.nan)
    for j in np.flatnonzero(n >= 2):
        column = table[covered[:, j], j]
        half = t_critical(confidence, int(n[j]) - 1) * column.std(ddof=1) / math.sqrt(n[j])
        lo[j], hi[j] = mean[j] - half, mean[j] + half
    return AggregatedCurve(steps_grid, mean, lo, hi, n.astype(np.int64))


# ----------------------------------------------------------------------------- drawing


def _new_figure(n_panels: int, title: str) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure  # lazy: importing torchrl_mst must stay light

    ncols = min(3, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, axes[:n_panels]


def _save_atomic(fig: Figure, out_path: Path) -> Path:
    fmt = out_path.suffix.lstrip(".").lower()
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"cannot infer an image format from {str(out_path)!r}; use a suffix among "
            f"{sorted(supported)} (e.g. .png)."
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=fmt, dpi=_DPI)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a figure is for everyone to read
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return out_path


def _module_colors(modules: Iterable[str]) -> dict[str, str]:
    """encoder, critic, actor keep C0, C1, C2 in every figure; other modules follow."""
    others = sorted(set(modules) - set(_MODULE_ORDER))
    return {m: f"C{i % 10}" for i, m in enumerate([*_MODULE_ORDER, *others])}


def _families(columns: Sequence[str]) -> dict[str, list[str]]:
    """Panel title -> its columns, in panel order.

    Known metrics go to their family's panel; an unknown metric of a known module
    (``critic/q_mean``) to a panel named after the metric; any other column (``loss/critic``)
    to a panel of its own.
    """
    panels: dict[str, list[str]] = {}
    for column in _sort_metrics(columns):
        module, suffix = _split_metric(column)
        title = next((t for t, styles in _FAMILIES.items() if suffix in styles), None)
        if title is None:
            title = suffix if module in _MODULE_ORDER else column
        panels.setdefault(title, []).append(column)
    return panels


def _line_style(column: str) -> str:
    _, suffix = _split_metric(column)
    return next((styles[suffix] for styles in _FAMILIES.values() if suffix in styles), "-")


def _finish_axis(ax: Axes, title: str, values: Iterable[np.ndarray]) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("agent steps")
    ax.grid(alpha=0.3)
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
        return
    if "Norms" in title and all((v > 0).all() for v in finite):
        ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _marker(n_points: int) -> str | None:
    return "o" if n_points == 1 else None  # a single point draws no line


def _draw_run_return(ax: Axes, run: RunData) -> None:
    ev = run.evals
    if "return_mean" in ev and ev["step"].size:
        x, y = ev["step"], ev["return_mean"]
        ax.plot(x, y, color="C0", marker=_marker(x.size), label="mean")
        if "return_min" in ev and "return_max" in ev and x.size == 1:
            ax.vlines(x, ev["return_min"], ev["return_max"], color="C0", alpha=0.4, label="min-max")
        elif "return_min" in ev and "return_max" in ev:
            ax.fill_between(
                x,
                ev["return_min"],
                ev["return_max"],
                color="C0",
                alpha=0.2,
                label="min-max",
                linewidth=0,
            )
    ax.set_ylabel("return")
    _finish_axis(ax, "Evaluation return", [ev.get("return_mean", np.empty(0))])


def plot_run(
    run_dir: str | os.PathLike[str], out_path: str | os.PathLike[str] | None = None
) -> Path:
    """Draw one run: return vs agent steps and a panel per diagnostics family.

    Panels: evaluation return (mean over episodes, band from min to max); then, for the
    columns present in ``diagnostics.csv``, stable rank, dormant ratio, norms (parameters
    solid, gradients dashed; log scale when positive), sparsity (solid) and mask change
    (dashed), plus one panel per unrecognised metric name. One colour per module
    (``encoder``, ``critic``, ``actor`` first), the same in every panel. Works on a run that
    has one evaluation, none yet, or no ``diagnostics.csv``.

    Args:
        run_dir: the run directory (see the module docstring for its files).
        out_path: where to write the figure; ``<run_dir>/curves.png`` by default. The suffix
            picks the format. Written atomically.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: if ``run_dir`` is not a run directory.
        ValueError: if ``out_path`` has no image suffix matplotlib can write.
    """
    run = load_run(run_dir)
    out = Path(out_path) if out_path is not None else run.path / "curves.png"
    panels = _families(run.metric_columns)
    env, seed = run.config_value("env"), run.config_value("seed")
    title = " | ".join(
        str(p) for p in (env, run.label(), None if seed is None else f"seed {seed}") if p
    )
    fig, axes = _new_figure(1 + len(panels), title or run.path.name)
    _draw_run_return(axes[0], run)
    diag = run.diagnostics
    colors = _module_colors(_module_of(c) for c in run.metric_columns)
    for ax, (panel, columns) in zip(axes[1:], panels.items()):
        for column in columns:
            keep = ~np.isnan(diag[column])
            x, y = diag["step"][keep], diag[column][keep]
            module = _module_of(column)
            # a panel mixing metrics (norms) names each line fully; otherwise the module is enough
            label = column if len(columns) > len({_module_of(c) for c in columns}) else module
            ax.plot(
                x,
                y,
                color=colors[module],
                linestyle=_line_style(column),
                marker=_marker(x.size),
                label=label or column,
            )
        _finish_axis(ax, panel, [diag[c] for c in columns])
    return _save_atomic(fig, out)


def plot_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    *,
    label_by: str = "label",
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> Path:
    """Overlay runs; runs that share a label (seeds) are drawn as mean and confidence band.

    Runs are grouped by :meth:`RunData.label` (``config[label_by]``, falling back to
    ``label``, ``recipe``, then the directory name without its seed suffix); when the runs
    span several envs the env is part of the group. Each group is aggregated per metric by
    :func:`aggregate_curves`: mean over seeds and a two-sided Student-t ``confidence``
    interval on the union of the seeds' steps, seeds linearly interpolated within their own
    range and never extrapolated. A group of one run is drawn as its line alone.

    Args:
        run_dirs: run directories to overlay.
        out_path: where to write the figure; the suffix picks the format. Written atomically.

    Keyword Args:
        label_by: config field naming a run's configuration; ``"label"`` by default.
        metrics: panels to draw: ``"return"`` and/or diagnostics columns such as
            ``"critic/dormant_ratio"``. Default: the return and every diagnostics column
            found in any run.
        confidence: coverage of the band; 0.95 by default.

    Returns:
        The path written.

    Raises:
        ValueError: if ``run_dirs`` is empty, a requested metric exists in no run, or
            ``out_path`` has no image suffix matplotlib can write.
        FileNotFoundError: if a path is not a run directory.
    """
    if len(run_dirs) == 0:
        raise ValueError("run_dirs is empty: pass at least one run directory.")
    runs = [load_run(d) for d in run_dirs]
    available = _sort_metrics(c for run in runs for c in run.metric_columns)
    if metrics is None:
        panels = ["return", *available]
    else:
        panels = list(dict.fromkeys(metrics))
        unknown = [m for m in panels if m != "return" and m not in available]
        if unknown:
            raise ValueError(
                f"metrics {unknown} appear in none of the runs; available: "
                f"{['return', *available]}."
            )
    envs = {run.config_value("env") for run in runs}
    groups: dict[str, list[RunData]] = {}
    for run in runs:
        key = run.label(label_by)
        if len(envs) > 1:
            key = f"{run.config_value('env')} | {key}"
        groups.setdefault(key, []).append(run)
    title = f"{next(iter(envs))}: " if len(envs) == 1 and None not in envs else ""
    title += f"mean over seeds, bands {confidence:.0%} Student-t CI"
    fig, axes = _new_figure(len(panels), title)
    for ax, panel in zip(axes, panels):
        drawn = []
        for i, (key, members) in enumerate(groups.items()):
            if panel == "return":
                curves = [
                    (r.evals["step"], r.evals["return_mean"])
                    for r in members
                    if "return_mean" in r.evals
                ]
            else:
                curves = [
                    (r.diagnostics["step"], r.diagnostics[panel])
                    for r in members
                    if panel in r.diagnostics
                ]
            if not curves:
                continue
            agg = aggregate_curves(curves, confidence=confidence)
            if agg.steps.size == 0:
                continue
            color = f"C{i % 10}"
            ax.plot(
                agg.steps,
                agg.mean,
                color=color,
                marker=_marker(agg.steps.size),
                label=f"{key} (n={int(agg.n.max())})",
            )
            if np.isfinite(agg.lo).any():
                ax.fill_between(agg.steps, agg.lo, agg.hi, color=color, alpha=0.2, linewidth=0)
            drawn.append(agg.mean)
        if panel == "return":
            ax.set_ylabel("return")
        _finish_axis(ax, "Evaluation return" if panel == "return" else panel, drawn)
    return _save_atomic(fig, Path(out_path))
