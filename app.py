"""The Artificial Mind's Eye: an interactive companion to the paper.

Run with ``streamlit run app.py``. The checkpoints come from ``$AIMEYE_CHECKPOINTS``
(default: ``checkpoints/``). Layout only: the pages live in ``views/`` (not ``pages/``:
Streamlit would take a ``pages/`` folder beside this script for its legacy multipage
mode) and every computation in :mod:`aimeye.app`.
"""

import streamlit as st

from aimeye import runtime

runtime.set_threads()  # one torch thread per process (robust on shared cores) unless $AIMEYE_THREADS says otherwise
st.set_page_config(page_title="The Artificial Mind's Eye", page_icon="👁️", layout="wide")

# 64×64 images are sent as PNGs upscaled by whole factors (aimeye.viz.png_bytes); should the
# browser rescale them further, keep the pixels crisp. Less empty space above the page, so that
# the attack page fits a projector screen.
st.html("<style>[data-testid='stImage'] img, [data-testid='stFullScreenFrame'] img "
        "{image-rendering: pixelated;} [data-testid='stMainBlockContainer'] {padding-top: 2.5rem;}</style>")

PAGES = [
    st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("views/inspect.py", title="Inspect", icon=":material/visibility:"),
    st.Page("views/attack.py", title="Attack stepper", icon=":material/bolt:"),
    st.Page("views/theta.py", title="θ explorer", icon=":material/tune:"),
    st.Page("views/experiments.py", title="Experiments", icon=":material/science:"),
]

page = st.navigation(PAGES)
if page.url_path != "attack" and "attack_session" in st.session_state:
    st.session_state["attack_session"].pause()  # play never runs out of sight
page.run()
