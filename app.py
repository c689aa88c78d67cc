"""The Artificial Mind's Eye: an interactive companion to the paper.

Run with ``streamlit run app.py``. The checkpoints come from ``$AIMEYE_CHECKPOINTS``
(default: ``checkpoints/``). Layout only: the pages live in ``pages/`` and every
computation in :mod:`aimeye.app_support`.
"""

import streamlit as st

from aimeye.app_support import configure_torch

configure_torch()  # one intra-op thread per request unless $AIMEYE_TORCH_THREADS says otherwise
st.set_page_config(page_title="The Artificial Mind's Eye", page_icon="👁️", layout="wide")

# 64×64 images are shown upscaled by whole factors (aimeye.viz.png_bytes); should the
# browser rescale them further, keep the pixels crisp
st.html("<style>[data-testid='stImage'] img, [data-testid='stFullScreenFrame'] img "
        "{image-rendering: pixelated;}</style>")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/inspect.py", title="Inspect", icon=":material/visibility:"),
    st.Page("pages/attack.py", title="Attack stepper", icon=":material/bolt:"),
    st.Page("pages/theta.py", title="θ explorer", icon=":material/tune:"),
    st.Page("pages/experiments.py", title="Experiments", icon=":material/science:"),
]

st.navigation(PAGES).run()
