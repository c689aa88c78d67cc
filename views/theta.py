"""θ explorer: how the threshold trades clean error against robustness."""

from __future__ import annotations

import streamlit as st

from aimeye import app_support as A
from pages import _ui as ui

ui.enter()

P = "theta"

st.title("θ explorer")
st.caption("The triple-staged network answers the best class only if its score reaches θ. A low θ accepts "
           "sloppy drawings (fewer rejections, easier false positives); a high θ demands a close match (more "
           "clean scenes rejected as none, but an attacker has to draw much more). The paper reports "
           "θ = 0.2, 0.45 and 0.7.")

state = ui.start_state(P)
with st.sidebar:
    theta = ui.theta_slider(P, state)
ui.finish_state(A.with_changes(state, theta=theta))

metrics = A.load_metrics(ui.root())
st.subheader("clean scenes")
if metrics is None or not metrics.get("theta_sweep"):
    ui.missing("The θ sweep (`checkpoints/metrics.json`)", A.EVALUATE_COMMAND)
else:
    row = A.sweep_at(metrics["theta_sweep"], theta)
    paper = metrics.get("paper_errors", {})
    m = st.columns(4)
    m[0].metric("error at θ", f"{100 * row['error']:.2f} %")
    m[1].metric("judged none", f"{100 * row['rejection']:.2f} %",
                help="Share of all test scenes the network calls none; a quarter of them truly are none.")
    m[2].metric("direct classifier error", f"{100 * metrics.get('errors', {}).get('direct', float('nan')):.2f} %")
    near = min(A.PAPER_THETAS, key=lambda t: abs(t - theta))
    if f"triple@{near}" in paper:
        m[3].metric(f"paper's error at θ = {near}", f"{100 * paper[f'triple@{near}']:.2f} %")
    st.caption(f"{metrics.get('n_per_class', '?')} held-out test scenes per class (backgrounds from the test "
               f"sources only); row shown: θ = {row['theta']:.2f}.")
    c1, c2 = st.columns([3, 2])
    with c1:
        st.plotly_chart(A.theta_sweep_figure(metrics["theta_sweep"], theta), key="theta_sweep")
    with c2:
        st.plotly_chart(A.confusion_figure(row["confusion"], f"triple-staged at θ = {row['theta']:.2f}"),
                        key="theta_confusion")

st.subheader("under attack")
rows = A.robustness_rows(ui.summary()) or A.robustness_rows(None, ui.attack_rows())
if not rows:
    ui.missing("The attack results (`checkpoints/results/summary.json`)", A.EXPERIMENT_COMMAND)
else:
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(A.robustness_figure(rows, theta, "median_steps"), key="theta_rob_steps")
    with c2:
        st.plotly_chart(A.robustness_figure(rows, theta, "median_distortion"), key="theta_rob_dist")
    st.caption("FP: turn an object into another object; FN: make the object disappear (verdict none). "
               "Dotted lines: the paper's θ values.")
    with st.expander("the numbers"):
        st.dataframe(rows, hide_index=True)
