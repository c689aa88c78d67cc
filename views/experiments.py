"""Experiments: Table 1 and Figs. 4-6 next to the paper, and a small experiment run live."""

from __future__ import annotations

import streamlit as st
import streamlit.components.v1 as components

from aimeye import app_support as A
from pages import _ui as ui

ui.enter()

st.title("Experiments")
st.caption("Every number here comes from a command in the repo; each section says which one makes it.")

root = ui.root()

st.header("Table 1: error on clean test scenes")
metrics = A.load_metrics(root)
if metrics is None:
    ui.missing("Table 1 (`checkpoints/metrics.json`)", A.EVALUATE_COMMAND)
else:
    st.dataframe(A.table1_rows(metrics), hide_index=True)
    st.caption(f"{metrics.get('n_per_class', '?')} held-out scenes per class; the paper used 10 000 per class. "
               f"Made by `{A.EVALUATE_COMMAND}`.")

summary = ui.summary()


def figure(stem: str, title: str, goal: str):
    st.subheader(title)
    if summary and summary.get(goal):
        c1, c2 = st.columns(2)
        with c1:
            st.plotly_chart(A.summary_box_figure(summary, goal, "steps"), key=f"exp_{stem}_steps")
        with c2:
            st.plotly_chart(A.summary_box_figure(summary, goal, "distortion"), key=f"exp_{stem}_dist")
        st.caption("Boxes: quartiles and median; whiskers at the 2nd and 98th percentiles; steps clipped at 1500 "
                   "for readability, as in the paper. Failed attacks count with steps = the cap.")
    elif ui.results_file(f"{stem}.html").exists():
        components.html(ui.results_file(f"{stem}.html").read_text(), height=520, scrolling=True)
    elif ui.results_file(f"{stem}.png").exists():
        st.image(ui.results_file(f"{stem}.png").read_bytes())
    else:
        ui.missing(f"{title} (`checkpoints/results/summary.json`)", A.EXPERIMENT_COMMAND)


st.header("Figs. 4 and 6: effort to fool each network")
figure("fig4", "Fig. 4: false positives (another object)", "fp")
figure("fig6", "Fig. 6: false negatives (no object)", "fn")
if summary and (summary.get("fp") or summary.get("fn")):
    with st.expander("success rates and medians", expanded=True):
        st.dataframe(A.success_rows(summary), hide_index=True)
        ratio = summary.get("ratio_fp_median_distortion_triple0.7_over_direct")
        if ratio:
            st.markdown(f"Median false-positive distortion, triple-staged θ = 0.7 over direct: **{ratio:.1f}×**.")
        if A.filter_rows(summary):
            st.markdown("Attacked images: the positive test scenes every network classifies correctly; the share "
                        "each network gets wrong beforehand:")
            st.dataframe(A.filter_rows(summary), hide_index=True)
        st.caption(f"Made by `{(summary.get('meta') or {}).get('command', A.EXPERIMENT_COMMAND)}`.")

st.header("Fig. 5: what the adversarial images look like")
gallery = sorted(A.results_dir(root).glob("fig5_*.png"))
if not gallery:
    ui.missing("The Fig. 5 galleries (`checkpoints/results/fig5_*.png`)", A.EXPERIMENT_COMMAND)
for path in gallery:
    st.image(path.read_bytes(), caption=path.stem.replace("_", " "))

st.header("robustness: accuracy under PGD vs ε")
robust = A.load_robust(root)
if robust and (A.robust_curves(robust, "fp") or A.robust_curves(robust, "fn")):
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(A.accuracy_eps_figure(robust, "fp"), key="exp_robust_fp")
    with c2:
        st.plotly_chart(A.accuracy_eps_figure(robust, "fn"), key="exp_robust_fn")
    st.caption("Dashed: PGD on the triple-staged network with the estimator's clip bypassed in the backward pass "
               "(a gradient-masking check); if it is much stronger, the clip was hiding gradients.")
    with st.expander("transfer: adversarials made on the direct network, judged by the others"):
        for goal in ("fp", "fn"):
            rows = A.transfer_rows(A.read_json(A.results_dir(root) / "robust.json"), goal)
            if rows:
                st.markdown(f"**{'false positives' if goal == 'fp' else 'false negatives'}** (success, %)")
                st.dataframe(rows, hide_index=True)
elif ui.results_file("robust.html").exists():
    components.html(ui.results_file("robust.html").read_text(), height=520, scrolling=True)
elif ui.results_file("robust.png").exists():
    st.image(ui.results_file("robust.png").read_bytes())
else:
    ui.missing("The robustness curves (`checkpoints/results/robust.json`)", A.EXPERIMENT_COMMAND)

st.header("run a small experiment live")
st.caption("The paper's iterated FGSM against each chosen network on the first few positive test scenes, right "
           "here on this machine's CPU: a tiny version of Fig. 4 (false positives) or Fig. 6 (false negatives).")
models = ui.models_or_stop()
if A.attacks_module() is None:
    st.info(A.attacks_problem() or A.ATTACKS_MISSING, icon=":material/construction:")
    st.stop()
with st.form("exp_live"):
    c = st.columns(4)
    nets = c[0].multiselect("networks", list(A.NETWORKS), default=["direct", "triple"], format_func=A.NETWORKS.get)
    theta = c[1].slider("θ (triple)", 0.0, 1.0, 0.7, 0.05)
    n_images = c[2].number_input("images", 1, 12, 3)
    cap = c[3].number_input("step cap", 5, 2000, 60, step=5)
    goal = st.radio("goal", ["fp", "fn"], horizontal=True,
                    format_func=lambda g: {"fp": "false positive (Fig. 4)", "fn": "false negative (Fig. 6)"}[g])
    go = st.form_submit_button("run", type="primary")
if go:
    if not nets:
        st.error("Choose at least one network.")
    else:
        bar = st.progress(0.0, text="starting…")
        rows = A.small_experiment(models, tuple(nets), float(theta), int(n_images), int(cap), goal,
                                  progress=lambda f, t: bar.progress(f, text=t))
        bar.progress(1.0, text="done")
        st.session_state["exp_live_rows"] = (goal, int(cap), rows)
if "exp_live_rows" in st.session_state:
    goal, cap, rows = st.session_state["exp_live_rows"]
    st.dataframe(rows, hide_index=True)
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(A.effort_box_figure(rows, goal, "steps", clip=None), key="exp_live_steps")
    with c2:
        st.plotly_chart(A.effort_box_figure(rows, goal, "distortion"), key="exp_live_dist")
    st.caption(f"Failed attacks count with steps = the cap ({cap}).")
