"""Inspect: what the triple-staged network sees, draws and compares (the mind's eye)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from aimeye import app_support as A
from pages import _ui as ui

ui.enter()

P = "insp"

st.title("Inspect: the mind's eye")
st.caption("For every class the triple-staged network estimates a rotation, draws the object it expects "
           "(projection and alpha), compares it with the image patch by patch, and scores the match. "
           "A class is the verdict only if its score reaches θ.")

models = ui.models_or_stop()
state = ui.start_state(P)
with st.sidebar:
    st.header("input")
    img, state = ui.image_input(P, state)
    theta = ui.theta_slider(P, state)
state = ui.finish_state(A.with_changes(state, theta=theta))

if img is None:
    st.stop()

an = ui.analysis(ui.root(), img.key)
verdict = an.verdict(theta)

left, mid, right = st.columns([1, 1.3, 1.3])
with left:
    st.subheader("input")
    ui.show_input(img)
with mid:
    st.subheader("verdict")
    text = A.verdict_text(an.scores, theta)
    (st.warning if verdict == A.NONE else st.success)(f"**Triple-staged (θ = {theta:.2f})** → {text}")
    if img.label is not None:
        ok = verdict == img.label
        st.markdown(f"True class: **{A.class_name(img.label)}**: {':green[correct]' if ok else ':red[wrong]'}")
    st.markdown(f"**Direct** → {A.direct_verdict_text(an.direct_probs)}  \n"
                f"**Direct + param** → {A.direct_verdict_text(an.direct_param_probs)}")
    st.plotly_chart(A.probabilities_figure(an.direct_probs, an.direct_param_probs), key="insp_probs")
with right:
    st.subheader("scores vs θ")
    st.plotly_chart(A.scores_theta_figure(an.scores, theta), key="insp_scores")
    st.caption("Move θ in the sidebar: bars at or above the dashed line pass; the highest passing class wins.")

st.divider()
st.subheader("per class: estimate → project → compare")
st.caption("Each column is one class hypothesis. *Projection* and *alpha* are what the network draws at its "
           "estimated rotation; *true render* is the real renderer at that same rotation, so you can judge "
           "the drawing. The map shows the similarity of every 10×10 patch (dotted: where the projected "
           "alpha counts).")
cols = st.columns(A.N_OBJECTS)
for c, col in enumerate(cols):
    with col:
        s = float(an.scores[c])
        st.markdown(f"#### {A.class_name(c)}")
        st.metric("score", f"{s:.3f}", delta=f"{s - theta:+.3f} vs θ", delta_color="normal")
        est = ", ".join(f"{v:+.2f}" for v in an.rotation[c])
        line = f"estimated rotation ({est}) rad"
        if img.rotation is not None and img.label == c:
            true = ", ".join(f"{v:+.2f}" for v in img.rotation)
            err = float(np.abs(an.rotation[c] - img.rotation).mean())
            line += f"  \ntrue rotation ({true}) rad, mean |error| {err:.3f} rad"
        st.markdown(line)
        ui.show_row([an.projection[c], an.alpha[c], an.rerender[c]], ["projection", "alpha", "true render"],
                    factor=2)
        st.plotly_chart(A.similarity_figure(an.similarity[c], an.pooled_alpha[c], f"{A.class_name(c)}: similarity"),
                        key=f"insp_sim_{c}")

with st.expander("rotation estimates as a table"):
    st.dataframe(A.rotation_table(an, img.rotation, img.label), hide_index=True)
