"""Inspect: what the triple-staged network sees, draws and compares (the mind's eye)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from aimeye.app.analysis import rotation_table
from aimeye.app.inputs import class_name
from aimeye.app.state import with_changes
from aimeye.app.wording import direct_verdict_text, verdict_text
from aimeye.figures.app import probabilities_figure, scores_theta_figure, similarity_figure
from aimeye.paper import N_OBJECTS, NETWORK_LABELS, NONE
from views import _ui as ui

P = "insp"

st.title("Inspect: the mind's eye")
st.caption("For every class the triple-staged network estimates a rotation, draws the object it expects "
           "(projection and alpha), compares it with the image patch by patch, and scores the match. "
           "A class is the verdict only if its score reaches θ.")

models = ui.models_or_stop()
state, notices = ui.start_state(P)
with st.sidebar:
    st.header("input")
    img, state, problem = ui.image_input(P, state)
    theta = ui.theta_slider(P, state)
state = ui.finish_state(with_changes(state, theta=theta), "inspect")
ui.show_notices(notices)
if problem:
    st.error(problem, icon=":material/broken_image:")

left, mid, right = st.columns([1, 1.3, 1.3])
with left:
    st.subheader("input")
    if state.source == "draw":
        st.caption("Draw an object (or anything) with the mouse; every stroke updates the verdicts.")
        img = ui.drawing_canvas(P)
        if img is not None:
            ui.show(img.image, "what the networks see: 64×64 grey", 2)
    elif img is not None:
        ui.show_input(img)
if img is None:
    if not problem:
        mid.info("Draw on the canvas to see what the networks make of it." if state.source == "draw" else
                 "Upload an image in the sidebar to see what the networks make of it.", icon=":material/image:")
    st.stop()

an = ui.analysis(ui.root(), img.key)
verdict = an.verdict(theta)
with mid:
    st.subheader("verdicts")
    (st.warning if verdict == NONE else st.success)(
        f"**Triple-staged (θ = {theta:.2f})** → {verdict_text(an.scores, theta)}")
    if img.label is not None:
        ok = verdict == img.label
        st.markdown(f"True class: **{class_name(img.label)}**: {':green[correct]' if ok else ':red[wrong]'}")
    st.markdown(f"**{NETWORK_LABELS['direct']}** → {direct_verdict_text(an.direct_probs)}  \n"
                f"**{NETWORK_LABELS['direct_param']}** → {direct_verdict_text(an.direct_param_probs)}")
    st.plotly_chart(probabilities_figure(an.direct_probs, an.direct_param_probs), key="insp_probs")
with right:
    st.subheader("scores against θ")
    st.plotly_chart(scores_theta_figure(an.scores, theta), key="insp_scores")
    st.caption("Move θ in the sidebar: bars at or above the dashed line pass; the highest passing class wins.")

st.divider()
st.subheader("per class: estimate → project → compare")
st.caption("Each column is one class hypothesis. *Projection* and *alpha* are what the network draws at its "
           "estimated rotation; *true render* is the real renderer at that same rotation, so you can judge "
           "the drawing. The map shows the similarity of every 10×10 patch (dotted: where the projected "
           "alpha counts).")
for c, col in enumerate(st.columns(N_OBJECTS)):
    with col:
        s = float(an.scores[c])
        st.markdown(f"#### {class_name(c)}")
        st.metric("score", f"{s:.3f}", delta=f"{s - theta:+.3f} vs θ", delta_color="normal")
        line = "estimated rotation (" + ", ".join(f"{v:+.2f}" for v in an.rotation[c]) + ") rad"
        if img.rotation is not None and img.label == c:
            err = float(np.abs(an.rotation[c] - img.rotation).mean())
            line += ("  \ntrue rotation (" + ", ".join(f"{v:+.2f}" for v in img.rotation)
                     + f") rad, mean |error| {err:.3f} rad")
        st.markdown(line)
        ui.show_row([an.projection[c], an.alpha[c], an.rerender[c]], ["projection", "alpha", "true render"],
                    factor=2)
        st.plotly_chart(similarity_figure(an.similarity[c], an.pooled_alpha[c], f"{class_name(c)}: similarity"),
                        key=f"insp_sim_{c}")

with st.expander("rotation estimates as a table"):
    st.dataframe(rotation_table(an, img.rotation, img.label), hide_index=True)
