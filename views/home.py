"""Home: the idea in a few sentences, the data flow of Fig. 1 and a live verdict."""

from __future__ import annotations

import streamlit as st

from aimeye.app.inputs import held_out_index
from aimeye.app.wording import direct_verdict_text, verdict_text
from aimeye.figures.app import pipeline_dot
from aimeye.paper import CLASSES, NONE
from views import _ui as ui

THETA = 0.7

st.title("The Artificial Mind's Eye")
st.markdown(
    "A rebuild of *Resisting Adversaries for CNNs using Internal Projection* (Berntsen, Kuijper, Heskes). "
    "Instead of mapping an image straight to a class, the **triple-staged** network must *prove* what it "
    "sees: for each class it **estimates** the object's rotation, **projects** (draws) the object at that "
    "rotation, and **compares** its drawing with the image through small 10×10 patches. Only if the "
    "drawing matches well enough (score ≥ θ) is the class the verdict. To make it see *another* object, an "
    "adversary has to start drawing that object into the image, while a direct CNN flips after a few "
    "invisible steps. Making it see *nothing* is its weak side: at θ = 0.7 a few grey levels push every "
    "score below θ, sooner than they flip a direct CNN; a lower θ holds out longer against that, and gives "
    "in sooner to the other objects (the θ explorer and the Experiments page have the numbers)."
)

b = st.columns(3)
if b[0].button("Draw your own: every verdict", icon=":material/draw:", type="primary",
               width="stretch"):
    st.switch_page("views/inspect.py", query_params={"source": "draw"})
if b[1].button("Race an attack: penguin → aeroplane", icon=":material/bolt:", width="stretch"):
    st.switch_page("views/attack.py", query_params={"source": "test", "index": "1", "race": "1", "theta": "0.7"})
if b[2].button("Explore the threshold θ", icon=":material/tune:", width="stretch"):
    st.switch_page("views/theta.py")

models = ui.models_or_stop()
img = ui.held_out_input(held_out_index(1))  # the first penguin of the held-out test set
an = ui.analysis(ui.root(), img.key)
verdict = an.verdict(THETA)

st.graphviz_chart(pipeline_dot(THETA, CLASSES[verdict]))

left, right = st.columns([1, 2])
with left:
    ui.show(img.image, img.caption)
with right:
    st.subheader("live verdict on a held-out test scene")
    (st.warning if verdict == NONE else st.success)(f"**Triple-staged (θ = {THETA})** → {verdict_text(an.scores, THETA)}")
    st.markdown(f"**Direct CNN** → {direct_verdict_text(an.direct_probs)}")
    ui.show_row([an.projection[1], an.alpha[1]], ["what it draws for penguin", "its alpha"], factor=3,
                stretch=False)

st.divider()
st.subheader("explore")
st.page_link("views/inspect.py", label="Inspect: look inside the mind's eye for any image, scene, upload or drawing",
             icon=":material/visibility:")
st.page_link("views/attack.py", label="Attack stepper: race an adversary against the direct and triple networks",
             icon=":material/bolt:")
st.page_link("views/theta.py", label="θ explorer: the error/robustness trade-off of the threshold",
             icon=":material/tune:")
st.page_link("views/experiments.py", label="Experiments: Table 1 and Figs. 4–6 against the paper",
             icon=":material/science:")
