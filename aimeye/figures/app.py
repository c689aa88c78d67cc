"""The app's charts: what the triple-staged network sees (Inspect), an attack as it runs
(Attack stepper) and the θ trade-off as linked views (θ explorer).

Plotly for the single views, altair where views are linked by a selection. Every
chart takes plain data (arrays, iterates, rows), uses the one palette
(:mod:`.palette`: one colour per network, one per class) and user-facing names only.
The experiment figures (Figs 4–6, robust accuracy) are in :mod:`.experiments`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..paper import CLASSES, N_OBJECTS, NETWORK_LABELS, THETAS, is_triple
from .palette import CLASS_COLOURS, FONT_SIZE, NETWORK_COLOURS, network_colour

THETA_COLOUR = "#CC0000"  # the threshold line, on every chart
PAPER_THETA_COLOUR = "#999999"


def _layout(fig, title: str, x: str | None = None, y: str | None = None, height: int = 320, legend: bool = True):
    fig.update_layout(title={"text": title, "font": {"size": FONT_SIZE + 2}, "x": 0, "xanchor": "left"},
                      height=height, margin={"l": 70, "r": 20, "t": 60, "b": 60}, template="plotly_white",
                      font={"size": FONT_SIZE}, showlegend=legend,
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0})
    if x is not None:
        fig.update_xaxes(title_text=x)
    if y is not None:
        fig.update_yaxes(title_text=y)
    return fig


# ------------------------------------------------------------------------------------ Inspect


def similarity_figure(similarity, pooled_alpha=None, title: str = "similarity map"):
    """The 55×55 similarity map (each cell: one 10×10 patch), with the ā = 0.5 contour of the
    pooled projected alpha (where the comparison counts)."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=np.asarray(similarity, np.float32), zmin=0, zmax=1, colorscale="Viridis",
                               colorbar={"title": {"text": "similarity"}, "thickness": 12},
                               hovertemplate="patch at x %{x}, y %{y} px<br>similarity %{z:.2f}<extra></extra>"))
    if pooled_alpha is not None and float(np.max(pooled_alpha)) > 0.05:
        fig.add_trace(go.Contour(z=np.asarray(pooled_alpha, np.float32), showscale=False, hoverinfo="skip",
                                 contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "lines"},
                                 line={"color": "white", "width": 2, "dash": "dot"}, name="ā = 0.5"))
    _layout(fig, title, "patch left edge x (px)", "patch top edge y (px)", height=340, legend=False)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return fig


def scores_theta_figure(scores, theta: float, title: str = "triple-staged scores"):
    """The three class scores as bars (grey when below θ), the threshold θ as a line."""
    import plotly.graph_objects as go

    s = [float(v) for v in np.asarray(scores).reshape(-1)[:N_OBJECTS]]
    colours = [CLASS_COLOURS[CLASSES[c]] if s[c] >= theta else "#C7C7C7" for c in range(N_OBJECTS)]
    fig = go.Figure(go.Bar(x=list(CLASSES[:N_OBJECTS]), y=s, marker_color=colours, text=[f"{v:.3f}" for v in s],
                           textposition="outside", hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.add_hline(y=theta, line={"color": THETA_COLOUR, "dash": "dash", "width": 2})
    _layout(fig, f"{title} (dashed: θ = {theta:.2f})", "class", "score (0–1)", height=340, legend=False)
    fig.update_yaxes(range=[0, 1.15])
    return fig


def probabilities_figure(direct_probs, direct_param_probs=None, title: str = "direct networks: probabilities"):
    """Softmax probabilities of the direct networks over the four classes."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for key, p in (("direct", direct_probs), ("direct_param", direct_param_probs)):
        if p is not None:
            fig.add_trace(go.Bar(x=list(CLASSES), y=[float(v) for v in p], name=NETWORK_LABELS[key],
                                 marker_color=NETWORK_COLOURS[key], hovertemplate="%{x}: %{y:.3f}"))
    _layout(fig, title, "class", "probability (0–1)", height=340)
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.05])
    return fig


# ------------------------------------------------------------------------------------- Attack


def attack_figure(histories: Mapping[str, list], theta: float, flips: Mapping[str, object] | None = None,
                  shown: int | None = None, height: int = 330):
    """The attack as it runs, in one chart of two panels sharing the step axis.

    Left: distortion against step, one line per network (its palette colour), a star at
    each flip. Right: the triple-staged network's class scores with the θ line (or, when
    only a direct network is attacked, its probabilities). ``histories``: network →
    iterates (``step``, ``distortion``, ``scores``); ``flips``: network → object with
    ``step`` and ``distortion``; ``shown``: the step on screen (a grey cursor).

    Built in one go from plain dicts (no ``make_subplots``, no ``add_hline``): the page redraws
    it at every tick while an attack plays, and plotly's helpers and a named template cost several times as much."""
    import plotly.graph_objects as go

    flips = flips or {}
    histories = {n: _thin(h) for n, h in histories.items()}

    def mode(hist):  # a single point needs a marker to be seen
        return "lines" if len(hist) > 1 else "lines+markers"

    scored = "triple" if "triple" in histories else next(iter(histories))
    triple = is_triple(scored)
    right = (f"{NETWORK_LABELS.get(scored, scored)}: scores (dashed: θ)" if triple
             else f"{NETWORK_LABELS.get(scored, scored)}: probabilities")
    last = max((hist[-1].step for hist in histories.values() if hist), default=0)
    data = []
    for k, (name, hist) in enumerate(histories.items()):
        colour = network_colour(name)  # the lines coincide while neither is clipped: the first is drawn wider
        data.append({"type": "scatter", "x": [it.step for it in hist], "y": [it.distortion for it in hist],
                     "mode": mode(hist), "name": NETWORK_LABELS.get(name, name), "legendgroup": name,
                     "line": {"color": colour, "width": 7 if k == 0 and len(histories) > 1 else 3},
                     "hovertemplate": "step %{x}: %{y:.4f}<extra></extra>"})
        f = flips.get(name)
        if f is not None:
            data.append({"type": "scatter", "x": [f.step], "y": [f.distortion], "mode": "markers+text",
                         "showlegend": False, "legendgroup": name, "text": [f"flip, step {f.step}"],
                         # a label left of a star near the left edge would be cut off
                         "textposition": "top left" if f.step > 0.3 * last else "top right",
                         "textfont": {"color": colour, "size": FONT_SIZE - 2},
                         "marker": {"symbol": "star", "size": 18, "color": colour,
                                    "line": {"color": "black", "width": 1}},
                         "hovertemplate": "flip at step %{x}<extra></extra>"})
    hist = histories[scored]
    steps = [it.step for it in hist]
    for c in range(len(hist[0].scores) if hist else 0):
        data.append({"type": "scatter", "x": steps, "y": [it.scores[c] for it in hist], "mode": mode(hist),
                     "name": CLASSES[c], "line": {"color": CLASS_COLOURS[CLASSES[c]], "width": 2.5},
                     "xaxis": "x2", "yaxis": "y2", "hovertemplate": f"{CLASSES[c]}: %{{y:.3f}}<extra></extra>"})
    shapes = []
    if triple:
        shapes.append({"type": "line", "xref": "x2 domain", "x0": 0, "x1": 1, "yref": "y2", "y0": theta, "y1": theta,
                       "line": {"color": THETA_COLOUR, "dash": "dash", "width": 2}})
    if scored in flips:
        x = flips[scored].step
        shapes.append({"type": "line", "xref": "x2", "x0": x, "x1": x, "yref": "y2 domain", "y0": 0, "y1": 1,
                       "line": {"color": network_colour(scored), "width": 1.5, "dash": "dot"}})
    if shown is not None:
        shapes += [{"type": "line", "xref": xr, "x0": shown, "x1": shown, "yref": f"{yr} domain", "y0": 0, "y1": 1,
                    "line": {"color": "#555555", "width": 1}} for xr, yr in (("x", "y"), ("x2", "y2"))]
    last = max((len(h) for h in histories.values()), default=1) - 1
    x_range = [0, max(10, last) * 1.02]
    title = {"text": "step", "standoff": 4}
    annotations = [{"text": t, "xref": "paper", "yref": "paper", "x": x, "y": 1.0, "yanchor": "bottom",
                    "xanchor": "center", "showarrow": False, "font": {"size": FONT_SIZE}}
                   for t, x in (("distortion (★: flip)", 0.23), (right, 0.77))]
    grid = {"gridcolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "linecolor": "#444444"}  # plotly_white, inlined:
    layout = {"height": height, "plot_bgcolor": "white", "font": {"size": FONT_SIZE}, "showlegend": True,
              "margin": {"l": 60, "r": 10, "t": 40, "b": 40}, "shapes": shapes, "annotations": annotations,
              "legend": {"orientation": "v", "y": 1, "yanchor": "top", "x": 1.01, "xanchor": "left"},
              "xaxis": {"domain": [0, 0.46], "range": x_range, "title": title, "anchor": "y", **grid},
              "xaxis2": {"domain": [0.54, 1], "range": x_range, "title": title, "anchor": "y2", **grid},
              "yaxis": {"title": {"text": "RMS change (0–1)"}, "rangemode": "nonnegative", "anchor": "x", **grid},
              "yaxis2": {"title": {"text": "score" if triple else "probability"}, "range": [0, 1.05],
                         "anchor": "x2", **grid}}
    return go.Figure({"data": data, "layout": layout})


def _thin(hist: list, most: int = 400) -> list:
    """At most ``most`` evenly spaced iterates, the first and the last always among them (a long
    attack draws as fast as a short one; a line at 400 points per panel width loses nothing visible)."""
    if len(hist) <= most:
        return hist
    keep = np.unique(np.linspace(0, len(hist) - 1, most).round().astype(int))
    return [hist[k] for k in keep]


# ---------------------------------------------------------------------------------- θ explorer


def _alt():
    import altair as alt

    return alt


def theta_explorer_chart(sweep: list[dict], attack_rows: list[dict] | None, theta: float, width: int = 440):
    """Linked views of the θ trade-off (altair). Clicking the error/rejection curve picks θ
    (the selection ``pick``); the confusion matrix and the under-attack panels follow it.

    ``sweep``: rows ``{"theta", "error", "rejection", "confusion"}`` (``metrics.json``);
    ``attack_rows``: rows ``{"goal", "network", "theta", "success_rate", "median_steps",
    "median_exact", "cap"}`` of the attack experiments (may be empty). ``width``: the curve's; the
    default keeps the curve and the matrix side by side within a 1366-pixel laptop screen beside
    the sidebar (a concatenated Vega-Lite chart cannot stretch to its container)."""
    import pandas as pd

    alt = _alt()
    th = [round(float(r["theta"]), 2) for r in sweep]
    curves = pd.DataFrame([{"theta": t, "series": name, "percent": 100 * float(r[key])}
                           for t, r in zip(th, sweep, strict=True)
                           for key, name in (("error", "error"), ("rejection", "judged none"))])
    cells = pd.DataFrame([{"theta": t, "true class": CLASSES[i], "verdict": CLASSES[j], "scenes": int(v)}
                          for t, r in zip(th, sweep, strict=True)
                          for i, row in enumerate(r["confusion"]) for j, v in enumerate(row)])
    picked = min(th, key=lambda t: abs(t - theta))
    pick = alt.selection_point(name="pick", fields=["theta"], on="click", nearest=True, value=[{"theta": picked}],
                               clear=False)
    base = alt.Chart(curves).encode(x=alt.X("theta:Q", title="threshold θ", scale=alt.Scale(domain=[0, 1])))
    lines = base.mark_line(strokeWidth=3).encode(
        y=alt.Y("percent:Q", title="share of test scenes (%)"),
        color=alt.Color("series:N", title=None, scale=alt.Scale(range=["#CC0000", "#555555"]),
                        legend=alt.Legend(orient="top")))
    points = base.mark_point(size=80, opacity=0).encode(y="percent:Q", tooltip=[
        alt.Tooltip("theta:Q", title="θ"), alt.Tooltip("series:N", title="rate"),
        alt.Tooltip("percent:Q", title="%", format=".2f")]).add_params(pick)
    rule = base.mark_rule(color="black", strokeWidth=2).encode(x="theta:Q").transform_filter(pick)
    paper = alt.Chart(pd.DataFrame({"theta": list(THETAS)})).mark_rule(
        color=PAPER_THETA_COLOUR, strokeDash=[4, 4]).encode(x="theta:Q")
    curve = alt.layer(paper, lines, points, rule).properties(
        width=width, height=300, title="clean test scenes (click to pick θ; dotted: the paper's θs)")

    conf_base = alt.Chart(cells).transform_filter(pick).encode(
        x=alt.X("verdict:N", sort=list(CLASSES), title="verdict", axis=alt.Axis(labelAngle=-30)),  # all four fit
        y=alt.Y("true class:N", sort=list(CLASSES), title="true class"))
    confusion = alt.layer(
        conf_base.mark_rect().encode(color=alt.Color("scenes:Q", scale=alt.Scale(scheme="blues"), legend=None)),
        conf_base.mark_text(fontSize=FONT_SIZE).encode(
            text="scenes:Q", color=alt.condition("datum.scenes > 400", alt.value("white"), alt.value("black"))),
    ).properties(width=260, height=300, title="confusion at the picked θ")

    top = alt.hconcat(curve, confusion)
    if not attack_rows:
        return _style(top)
    rows = pd.DataFrame([{**r, "name": NETWORK_LABELS.get(r["network"], r["network"]),
                          "success (%)": 100 * float(r["success_rate"]),
                          "median": ("" if r.get("median_exact", True) else "≥ ") + f"{r['median_steps']:g}"}
                         for r in attack_rows])
    tri = rows[rows.network == "triple"]
    ref = rows[rows.network != "triple"]
    goal_scale = alt.Scale(domain=["false positive", "false negative"], range=[[1, 0], [8, 5]])
    colours = alt.Scale(domain=[NETWORK_LABELS[k] for k in ("direct", "direct_param", "triple")],
                        range=[NETWORK_COLOURS[k] for k in ("direct", "direct_param", "triple")])
    panels = []
    for field, title, fmt in (("success (%)", "attacks that succeed within the cap (%)", ".0f"),
                              ("median_steps", "median FGSM steps to flip (≥: capped)", "g")):
        enc = {"y": alt.Y(f"{field}:Q", title=title),
               "color": alt.Color("name:N", title=None, scale=colours, legend=alt.Legend(orient="bottom")),
               "strokeDash": alt.StrokeDash("goal label:N", title=None, scale=goal_scale,
                                            legend=alt.Legend(orient="bottom", symbolStrokeWidth=3))}
        tips = [alt.Tooltip("name:N", title="network"), alt.Tooltip("goal label:N", title="goal"),
                alt.Tooltip("theta:Q", title="θ"), alt.Tooltip("median:N", title="median steps"),
                alt.Tooltip("success (%):Q", format=".0f"), alt.Tooltip("n:Q", title="attacks")]
        tri_c = alt.Chart(tri).transform_calculate(**_goal_label()).encode(
            x=alt.X("theta:Q", title="threshold θ", scale=alt.Scale(domain=[0, 1])), **enc)
        ref_c = alt.Chart(ref).transform_calculate(**_goal_label()).mark_rule(strokeWidth=2).encode(
            y=f"{field}:Q", color=enc["color"], strokeDash=enc["strokeDash"], tooltip=tips)
        cursor = alt.Chart(curves).mark_rule(color="black", strokeWidth=2).encode(x="theta:Q").transform_filter(pick)
        layers = [ref_c, tri_c.mark_line(strokeWidth=3, point=True).encode(tooltip=tips), cursor]
        if field == "median_steps":  # a censored median is a lower bound: say so at its point
            layers.append(alt.Chart(tri).transform_filter("!datum.median_exact").mark_text(
                dy=-12, fontSize=FONT_SIZE - 2).encode(x="theta:Q", y=f"{field}:Q", text="median:N"))
        panels.append(alt.layer(*layers).properties(width=width - 90, height=260, title=title))
    return _style(alt.vconcat(top, alt.hconcat(*panels).properties(title="under attack (iterative FGSM)")))


def _goal_label() -> dict:
    return {"goal label": "datum.goal == 'fn' ? 'false negative' : 'false positive'"}


def _style(chart):
    return chart.configure_axis(labelFontSize=FONT_SIZE - 2, titleFontSize=FONT_SIZE).configure_legend(
        labelFontSize=FONT_SIZE - 2, symbolStrokeWidth=3).configure_title(fontSize=FONT_SIZE, anchor="start")


# -------------------------------------------------------------------------------------- Home


def pipeline_dot(theta: float = 0.7, verdict: str | None = None) -> str:
    """Graphviz DOT for the paper's Fig. 1: image → estimate → project → compare → verdict(θ)."""
    v = f"verdict (θ = {theta:.2f})" + (f"\\n{verdict}" if verdict else "")
    return f"""digraph G {{
  rankdir=LR; bgcolor="transparent";
  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#0072B2", fontname="Helvetica", fontsize=16];
  edge [color="#0072B2", fontname="Helvetica", fontsize=13];
  image [label="query image\\n64×64 grey", fillcolor="#ffffff"];
  est [label="1. estimate\\nrotation per class"];
  proj [label="2. project\\ndraw image + alpha"];
  comp [label="3. compare\\n10×10 patches"];
  score [label="score\\nΣ(sim·ā)/Σā"];
  verdict [label="{v}", fillcolor="#fff4e0", color="#E69F00"];
  image -> est; est -> proj [label="(rx, ry, rz)"]; proj -> comp; image -> comp [style=dashed];
  comp -> score; score -> verdict;
}}"""


# ------------------------------------------------------------------------------ Experiments


def live_figure(rows: list[dict], cap: int):
    """A small live experiment, one point per attack: steps (left) and distortion (right) per
    network; an attack that failed sits at the cap, drawn as an open marker."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(1, 2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=(f"FGSM steps (open: not flipped within the cap, {cap})", "distortion"))
    for key in dict.fromkeys(r["key"] for r in rows):
        rs = [r for r in rows if r["key"] == key]
        name = rs[0]["network"]
        for col, field in ((1, "steps"), (2, "distortion")):
            fig.add_trace(go.Scatter(x=[r[field] for r in rs], y=[name] * len(rs), mode="markers",
                                     marker={"size": 14, "color": network_colour(key),
                                             "symbol": ["circle" if r["succeeded"] else "circle-open" for r in rs],
                                             "line": {"width": 2, "color": network_colour(key)}},
                                     name=name, showlegend=False,
                                     hovertemplate=f"{field}: %{{x}}<extra>{name}</extra>"), 1, col)
    _layout(fig, "the attacks just run", height=120 + 60 * len({r["key"] for r in rows}), legend=False)
    fig.update_xaxes(title_text="steps", row=1, col=1)
    fig.update_xaxes(title_text="RMS change (0–1)", row=1, col=2)
    return fig
