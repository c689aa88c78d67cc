"""Experiments: Table 1 and Figs. 4–6 next to the paper, for every committed results folder, and a
small experiment run live."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from aimeye.app import env
from aimeye.app.live import small_experiment
from aimeye.app.tables import filter_rows, robust_rows, success_rows, table1_rows
from aimeye.app.wording import other_weights_text, run_title
from aimeye.experiments import format_median, other_weights
from aimeye.figures.app import live_figure
from aimeye.figures.experiments import box_figure, gallery_image, robust_figure
from aimeye.paper import GOAL_TITLES, NETWORK_LABELS, NETWORKS, network_label
from views import _ui as ui

st.title("Experiments")
st.caption("Every number here comes from a command in the repo; each section says which one made it.")

st.header("Table 1: error on clean test scenes")
metrics = env.load_metrics(ui.root())
if metrics is None:
    ui.missing("Table 1 (`checkpoints/metrics.json`)", env.EVALUATE_COMMAND)
else:
    if changed := other_weights(metrics.get("checkpoints_sha256") or {}, ui.root()):
        st.warning(other_weights_text(changed), icon=":material/history:")
    st.dataframe(table1_rows(metrics), hide_index=True)
    st.caption(f"{metrics.get('n_per_class', '?')} held-out scenes per class; the paper used 10,000 per class. "
               f"Made by `{env.EVALUATE_COMMAND}`.")

st.header("Figs. 4–6 and robustness: every results folder")
infos = ui.runs()
if not infos:
    ui.missing("the attack results (`checkpoints/results/`)", env.EXPERIMENT_COMMAND)
else:
    info = st.selectbox("results folder", infos, format_func=run_title, key="exp_run",
                        help="Type to search. The paper's runs come first, then the merges (each the per-image "
                             "worst case over the runs it names), then the runs that feed them.")
    n_now = sum(i.current for i in infos)
    st.caption(f"{len(infos)} folders: the {n_now} made with the shipped weights first, then "
               f"{len(infos) - n_now} made with earlier weights (kept as the record the README cites).")
    run = ui.run(info.path)
    st.markdown(f"**{info.label}**" + (f", {info.n_attacked} test images attacked" if info.n_attacked else "")
                + (f", {info.wall_time_s / 60:.0f} min" if info.wall_time_s else ""))
    if info.other_weights:
        st.warning(other_weights_text(info.other_weights), icon=":material/history:")
    for note in info.notes:
        st.caption(note)
    with st.expander("the commands that made it"):
        st.code("\n".join(info.commands) or "(not recorded)", language="bash")
    if run.summary:
        for goal in ("fp", "fn"):
            if run.summary.get(goal):
                st.plotly_chart(box_figure(run.summary, goal), key=f"exp_{info.name}_{goal}")
        st.markdown("**success and medians** (≥: failed attacks decide the median, so it is a lower bound)")
        st.dataframe(success_rows(run.summary, format_median), hide_index=True)
        shares = filter_rows(run.summary)
        if shares:
            st.markdown("Attacked: the positive test scenes every network classifies correctly. Share each "
                        "network gets wrong beforehand:")
            st.dataframe(shares, hide_index=True)
    if run.gallery is not None:
        st.subheader("Fig. 5: what the adversarial images look like")
        for net in dict.fromkeys(np.asarray(run.gallery["network"]).astype(str)):
            st.image(gallery_image(run.gallery, net, columns=6, factor=3), output_format="PNG",
                     caption=f"{network_label(net)}: top original, middle adversarial, bottom the monkey "
                             "drawn by the true renderer at the estimated rotation")
    if run.robust:
        st.subheader("robust accuracy against ε")
        st.plotly_chart(robust_figure(run.robust), key=f"exp_{info.name}_robust")
        for goal, title in GOAL_TITLES.items():
            if run.robust["table"].get(goal):
                st.markdown(f"**{title}**: the share of images no attack broke, 95 % interval")
                st.table(pd.DataFrame(robust_rows(run.robust, goal)).set_index("network"))  # wraps: fits 1366 px

st.header("run a small experiment live")
st.caption("The paper's iterated FGSM against each chosen network on the first few positive test scenes, right "
           "here on this machine's CPU: a tiny version of Fig. 4 (false positives) or Fig. 6 (false negatives).")
models = ui.models_or_stop()
with st.form("exp_live"):
    c = st.columns(4)
    nets = c[0].multiselect("networks", list(NETWORKS), default=["direct", "triple"], format_func=NETWORK_LABELS.get)
    theta = c[1].slider("θ (triple-staged)", 0.0, 1.0, 0.7, 0.05)
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
        rows = small_experiment(models, tuple(nets), float(theta), int(n_images), int(cap), goal,
                                progress=lambda f, t: bar.progress(f, text=t))
        bar.progress(1.0, text="done")
        st.session_state["exp_live_rows"] = (goal, int(cap), rows)
if "exp_live_rows" in st.session_state:
    goal, cap, rows = st.session_state["exp_live_rows"]
    st.plotly_chart(live_figure(rows, cap), key="exp_live_chart")
    st.dataframe([{k: v for k, v in r.items() if k != "key"} for r in rows], hide_index=True)
