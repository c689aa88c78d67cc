"""θ explorer: how the threshold trades clean error against robustness (linked views)."""

from __future__ import annotations

import streamlit as st

from aimeye.app import env
from aimeye.app.state import with_changes
from aimeye.app.tables import attack_rows, sweep_at
from aimeye.figures.app import theta_explorer_chart
from aimeye.paper import PAPER_TABLE1, THETAS
from views import _ui as ui

P = "theta"

st.title("θ explorer")
st.caption("The triple-staged network answers the best class only if its score reaches θ. A low θ accepts "
           "sloppy drawings (fewer rejections, easier false positives); a high θ demands a close match (more "
           "clean scenes rejected as none, but an attacker has to draw much more). The paper reports "
           "θ = 0.2, 0.45 and 0.7. **Click the curve to pick θ**: the confusion matrix and the under-attack "
           "panels follow.")

state, notices = ui.start_state(P)
with st.sidebar:
    theta = ui.theta_slider(P, state)
ui.finish_state(with_changes(state, theta=theta), "theta")
ui.show_notices(notices)

metrics = env.load_metrics(ui.root())
if metrics is None or not metrics.get("theta_sweep"):
    ui.missing("the θ sweep (`checkpoints/metrics.json`)", env.EVALUATE_COMMAND)
    st.stop()

sweep = metrics["theta_sweep"]
runs = ui.runs()
run_info = None
if runs:
    fgsm = [r for r in runs if r.cap is not None]
    if fgsm:
        run_info = st.sidebar.selectbox("attack results", fgsm, format_func=lambda r: r.label,
                                        index=max(range(len(fgsm)), key=lambda i: fgsm[i].n_per_class or 0),
                                        key=f"{P}_run", help="Which attack experiment the under-attack panels show.")
rows = attack_rows(ui.run(run_info.path).summary, run_info.cap) if run_info else []

row = sweep_at(sweep, theta)
m = st.columns(4)
m[0].metric(f"error at θ = {row['theta']:.2f}", f"{100 * row['error']:.2f} %")
m[1].metric("judged none", f"{100 * row['rejection']:.2f} %",
            help="Share of all test scenes the network calls none; a quarter of them truly are none.")
m[2].metric("direct CNN error", f"{100 * metrics.get('errors', {}).get('direct', float('nan')):.2f} %")
near = min(THETAS, key=lambda t: abs(t - theta))
m[3].metric(f"paper's error at θ = {near}", f"{100 * PAPER_TABLE1[f'triple@{near}']:.2f} %")


def _picked():
    pick = (st.session_state.get(f"{P}_chart") or {}).get("selection", {}).get("pick") or []
    if pick and "theta" in pick[0]:
        st.session_state[f"{P}_theta"] = round(float(pick[0]["theta"]), 2)


@st.cache_data(show_spinner=False, max_entries=32)
def _spec(root: str, version: float, run: str | None, theta: float) -> dict:
    """The linked views as a Vega-Lite spec (building and validating the altair chart is the slow part)."""
    return theta_explorer_chart(sweep, rows, theta).to_dict()


st.vega_lite_chart(_spec(ui.root(), ui.version(), str(run_info.path) if run_info else None, theta), key=f"{P}_chart",
                   on_select=_picked, selection_mode="pick")
st.caption(f"{metrics.get('n_per_class', '?')} held-out test scenes per class (backgrounds from the test sources "
           "only). Under attack: "
           + (f"{run_info.label}; a median marked ≥ in the tooltip is a lower bound (failed attacks count as the "
              "cap). Horizontal lines: the direct networks." if run_info else "no attack results yet."))
if not rows:
    ui.missing("the attack results (`checkpoints/results/`)", env.EXPERIMENT_COMMAND)
