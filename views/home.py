"""Home: the idea in a few sentences, the data flow of Fig. 1 and a live verdict."""

from __future__ import annotations

import streamlit as st

from aimeye import app_support as A
from pages import _ui as ui

ui.enter()

EXAMPLE_INDEX = A.held_out_index(1)  # the first penguin of the held-out test set
THETA = 0.7

st.title("The Artificial Mind's Eye")
st.markdown(
    "A rebuild of *Resisting Adversaries for CNNs using Internal Projection* (Berntsen, Kuijper, Heskes). "
    "Instead of mapping an image straight to a class, the **triple-staged** network must *prove* what it "
    "sees: for each class it **estimates** the object's rotation, **projects** (draws) the object at that "
    "rotation, and **compares** its drawing with the image through small 10×10 patches. Only if the "
    "drawing matches well enough (score ≥ θ) is the class the verdict. To fool it, an adversary has to "
    "start drawing the other object into the image, while a direct classifier flips after a few "
    "invisible steps."
)

models = ui.models_or_stop()
img = ui.held_out_input(EXAMPLE_INDEX)
an = ui.analysis(ui.root(), img.key)
verdict = an.verdict(THETA)

st.graphviz_chart(A.pipeline_dot(THETA, A.class_name(verdict)))

left, right = st.columns([1, 2])
with left:
    ui.show(img.image, img.caption)
with right:
    st.subheader("live verdict on a held-out test scene")
    (st.warning if verdict == A.NONE else st.success)(
        f"**Triple-staged (θ = {THETA})** → {A.verdict_text(an.scores, THETA)}")
    st.markdown(f"**Direct classifier** → {A.direct_verdict_text(an.direct_probs)}")
    ui.show_row([an.projection[1], an.alpha[1]], ["what it draws for penguin", "its alpha"], factor=2)

st.divider()
st.subheader("explore")
st.page_link("pages/inspect.py", label="Inspect: look inside the mind's eye for any image, scene or upload",
             icon=":material/visibility:")
st.page_link("pages/attack.py", label="Attack stepper: race an adversary against the direct and triple networks",
             icon=":material/bolt:")
st.page_link("pages/theta.py", label="θ explorer: the error/robustness trade-off of the threshold",
             icon=":material/tune:")
st.page_link("pages/experiments.py", label="Experiments: Table 1 and Figs. 4–6 against the paper",
             icon=":material/science:")
