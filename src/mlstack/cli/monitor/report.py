"""The report: `summary.json` (every finding, for scripts) and `report.html` (one
self-contained page: verdict, per-feature table, schema, quality, and plots drawn with
matplotlib, embedded as PNG), rendered with a Jinja2 template."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from mlstack.cli.monitor.analysis import finite
from mlstack.cli.monitor.captures import PREDICTION

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
PLOTTED_FEATURES = 12  # the most distant ones, when there are more
REFERENCE_COLOR, CURRENT_COLOR, DRIFT_COLOR = "#4c72b0", "#dd8452", "#c44e52"

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Monitoring: {{ s.model.name }} v{{ s.model.version }}</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
 h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
 .muted { color: #666; font-size: 13px; }
 .verdict { padding: 10px 14px; border-radius: 6px; font-weight: 600; margin: 14px 0; }
 .drift { background: #fbe3e4; color: #8a1f24; } .ok { background: #e3f4e6; color: #1d6b2f; }
 table { border-collapse: collapse; font-size: 13px; }
 th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
 th:first-child, td:first-child { text-align: left; }
 tr.drifted td { color: #8a1f24; font-weight: 600; }
 img { max-width: 100%; }
</style></head><body>
<h1>Model monitoring: {{ s.model.name }} version {{ s.model.version }}</h1>
<div class="muted">{{ s.model.uri }} &middot; run {{ s.model.run_id }} &middot; endpoint
 {{ s.captures.endpoint }}/{{ s.captures.variant }} &middot; {{ s.captures.uri }}<br>
 traffic {{ s.captures.since }} to {{ s.captures.until }}: {{ s.events }} requests,
 {{ s.rows }} rows in {{ s.files }} files{% if s.unreadable %}; not used:
 {% for reason, n in s.unreadable.items() %}{{ n }} {{ reason }}
 {%- if not loop.last %}, {% endif %}{% endfor %}{% endif %}</div>
{% if s.drift_detected %}
<div class="verdict drift">Drift in {{ s.drifted_features|length }} of {{ s.features|length }}
 features: {{ s.drifted_features|join(", ") }}{% if s.prediction_drifted %}; the predictions
 drifted too{% endif %}</div>
{% elif s.rows %}
<div class="verdict ok">No feature drifted{% if s.prediction_drifted %} (the predictions
 did){% endif %}</div>
{% else %}<div class="verdict drift">No captured traffic in this range</div>{% endif %}
<div class="muted">Numeric features: Wasserstein distance over the training standard
 deviation, and the Kolmogorov-Smirnov test; categorical ones: Jensen-Shannon distance and
 chi-square. Rule: {{ s.stattest }} (the distance decides above 1,000 values, else the test,
 its p-value {{ s.p_value }} divided by the number of features); the rule column says which
 decided.</div>
<h2>Features</h2>
<table><tr><th>feature</th><th>type</th><th>distance</th><th>test statistic</th>
<th>p-value</th><th>rule</th><th>drift</th><th>rows</th><th>missing</th></tr>
{% for f in s.features + ([s.prediction] if s.prediction else []) %}
<tr class="{{ 'drifted' if f.drifted }}"><td>{{ f.name }}</td><td>{{ f.kind }}</td>
<td>{{ num(f.distance) }}</td><td>{{ num(f.statistic) }} ({{ f.test_name }})</td>
<td>{{ num(f.p_value) }}</td><td>{{ rule(f) }}</td><td>{{ "yes" if f.drifted else "no" }}</td>
<td>{{ f.current_rows }}</td><td>{{ f.current_missing }}</td></tr>
{% endfor %}</table>
{% if s.prediction %}<div class="muted">Predictions compared with
 {{ s.prediction_reference }}.</div>{% endif %}
<h2>Schema</h2>
<p>Missing features: {{ s.schema.missing|join(", ") or "none" }}.
 Unexpected columns: {{ s.schema.unexpected|join(", ") or "none" }}.
 {{ s.schema.positional_mismatch or "" }}</p>
{% if s.quality %}<h2>Model quality (ground truth)</h2>
<p>{{ s.quality.rows }} rows matched by inference id: MAE {{ num(s.quality.mae) }},
 RMSE {{ num(s.quality.rmse) }}.</p>{% endif %}
{% for title, image in plots %}<h2>{{ title }}</h2><img alt="{{ title }}"
 src="data:image/png;base64,{{ image }}">{% endfor %}
<p class="muted">mlstack monitor &middot; MLflow run {{ s.mlflow.run_id or "not logged" }}</p>
</body></html>
"""


def rule(column: dict[str, Any]) -> str:
    """The rule that judged a column, e.g. 'distance >= 0.1' or 'p < 0.005'."""
    if column["stattest"] == "distance":
        return f"distance >= {column['threshold']:.3g}"
    return f"p < {column['threshold']:.3g}"


def num(value: Any) -> str:
    """A number for the table: 4 significant digits, or a dash."""
    return "-" if value is None else f"{value:.4g}"


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def traffic_plot(summary: dict[str, Any]) -> str | None:
    """Requests per window (bars) and the share of drifted features (line)."""
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    windows = summary.get("windows") or []
    if not windows:
        return None
    import pandas as pd

    starts = pd.to_datetime([w["start"] for w in windows])
    width = pd.Timedelta(seconds=summary["window_seconds"] * 0.8)
    figure = Figure(figsize=(10, 3))
    axes = figure.subplots()
    axes.bar(starts, [w["requests"] for w in windows], width=width, align="edge", color="#bbb")
    axes.set_ylabel("requests")
    share = axes.twinx()
    share.plot(starts + width / 2, [w["drift_share"] for w in windows], "o-", color=DRIFT_COLOR)
    share.set_ylim(0, 1.05)
    share.set_ylabel("share of drifted features", color=DRIFT_COLOR)
    axes.xaxis.set_major_formatter(DateFormatter("%m-%d %H:%M"))
    return _png(figure)


def distribution_plot(
    summary: dict[str, Any], reference: Any, current: Any, reference_prediction: str | None
) -> str | None:
    """Training against captured distributions: the prediction, then the most distant
    features; drifted ones titled in red."""
    from matplotlib.figure import Figure

    columns = sorted(summary["features"], key=lambda f: -(f["distance"] or 0))[:PLOTTED_FEATURES]
    if summary.get("prediction"):
        columns = [summary["prediction"], *columns]
    if not columns:
        return None
    per_row = 4
    rows = (len(columns) + per_row - 1) // per_row
    figure = Figure(figsize=(12, 2.6 * rows))
    grid = figure.subplots(rows, per_row, squeeze=False)
    for axes, column in zip(grid.flat, columns, strict=False):
        name = column["name"]
        if name == "prediction" and column is summary.get("prediction"):
            ref, cur = reference.get(reference_prediction), current[PREDICTION]
        else:
            ref, cur = reference[name], current[name]
        _histogram(axes, ref, cur, column["kind"])
        color = DRIFT_COLOR if column["drifted"] else "#222"
        axes.set_title(f"{name} ({num(column['distance'])})", color=color, fontsize=10)
    for axes in list(grid.flat)[len(columns) :]:
        axes.axis("off")
    grid.flat[0].legend(["training", "captured"], fontsize=8)
    figure.tight_layout()
    return _png(figure)


def _histogram(axes: Any, ref: Any, cur: Any, kind: str) -> None:
    import numpy as np
    import pandas as pd

    if ref is None:
        return
    ref, cur = ref.dropna(), cur.dropna()
    if kind == "numeric":
        ref, cur = pd.to_numeric(ref, errors="coerce"), pd.to_numeric(cur, errors="coerce")
        both = pd.concat([ref, cur]).dropna()
        bins = np.histogram_bin_edges(both, bins=20) if len(both) else 10
        axes.hist(ref, bins=bins, density=True, alpha=0.55, color=REFERENCE_COLOR)
        axes.hist(cur, bins=bins, density=True, alpha=0.55, color=CURRENT_COLOR)
    else:
        shares = pd.DataFrame(
            {
                "training": ref.astype(str).value_counts(normalize=True),
                "captured": cur.astype(str).value_counts(normalize=True),
            }
        ).fillna(0)
        shares.head(10).plot.bar(ax=axes, color=[REFERENCE_COLOR, CURRENT_COLOR], legend=False)
    axes.tick_params(labelsize=7)


def write(
    summary: dict[str, Any],
    reference: Any,
    current: Any,
    reference_prediction: str | None,
    folder: Path,
) -> list[Path]:
    """summary.json and report.html into folder; their paths. reference_prediction: the
    reference's column the captured predictions are compared with."""
    from jinja2 import Environment

    folder.mkdir(parents=True, exist_ok=True)
    clean = finite(summary)
    summary_path = folder / SUMMARY_FILE
    summary_path.write_text(json.dumps(clean, indent=2) + "\n")
    plots = []
    if current is not None and len(current):
        traffic = traffic_plot(clean)
        if traffic:
            plots.append(("Traffic and drift over time", traffic))
        distributions = distribution_plot(clean, reference, current, reference_prediction)
        if distributions:
            plots.append(("Training and captured distributions (distance)", distributions))
    environment = Environment(autoescape=True)
    page = environment.from_string(TEMPLATE).render(s=clean, plots=plots, num=num, rule=rule)
    report_path = folder / REPORT_FILE
    report_path.write_text(page)
    return [report_path, summary_path]
