"""Widgets and cached resources shared by the pages. Layout only: every number comes from
:mod:`aimeye.app` (which never imports streamlit)."""

from __future__ import annotations

import streamlit as st

from aimeye import CheckpointError
from aimeye.app import env
from aimeye.app.analysis import Analysis, analyse
from aimeye.app.inputs import (
    BG_SOURCES,
    CANVAS_BACKGROUND,
    CANVAS_SIDE,
    MAX_SEED,
    SOURCES,
    TEST_SIZE,
    InputImage,
    class_name,
    held_out_scene,
    image_from_key,
    is_blank,
    make_scene,
)
from aimeye.app.state import ViewState, parse_query, to_query, with_changes
from aimeye.app.uploads import FORMATS_TEXT, UPLOAD_EXTENSIONS, UploadError, decode_upload
from aimeye.paper import CLASSES
from aimeye.viz import png_bytes

# ----------------------------------------------------------- cached resources


@st.cache_resource(show_spinner="Loading the networks…")
def _models(root: str):
    return env.load_models(root)


def root() -> str:
    return str(env.checkpoint_dir())


def models_or_stop():
    """The shared, frozen models; on a missing or corrupt checkpoint, a friendly error and stop."""
    try:
        return _models(root())
    except CheckpointError as e:
        st.error(env.checkpoint_message(e), icon=":material/neurology:")
        st.code(env.TRAIN_COMMAND, language="bash")
        st.stop()


@st.cache_data(show_spinner=False, max_entries=64)
def analysis(root_dir: str, image_key: bytes) -> Analysis:
    """Every network's view of one image, cached per image (the key is its pixels)."""
    return analyse(_models(root_dir), InputImage(image_from_key(image_key), None, None, "").x)


@st.cache_data(show_spinner=False, max_entries=64)
def held_out_input(index: int) -> InputImage:
    return held_out_scene(index)


@st.cache_data(show_spinner=False, max_entries=64)
def scene_input(cls: int, rot: tuple[float, float, float], bg: str, seed: int) -> InputImage:
    return make_scene(cls, rot, bg, seed)


@st.cache_data(show_spinner=False, max_entries=16)
def upload_input(data: bytes, name: str) -> InputImage:
    return InputImage.from_upload(decode_upload(data, name), name)


# ------------------------------------------------------------------- images


def show(img, caption: str | None = None, factor: int = 4, container=st):
    """A crisp PNG of a [0,1] greyscale image, upscaled by a whole factor (nearest neighbour)."""
    container.image(png_bytes(img, factor), caption=caption, output_format="PNG")


def show_row(images, captions, factor: int = 3, stretch: bool = True):
    """Images side by side in equal columns, each a crisp PNG (filling its column, or at its own size)."""
    for col, img, cap in zip(st.columns(len(images)), images, captions, strict=True):
        col.image(png_bytes(img, factor), caption=cap, output_format="PNG", width="stretch" if stretch else "content")


def show_input(img: InputImage, factor: int = 4):
    show(img.image, img.caption, factor)
    for note in img.notes:
        st.warning(note, icon=":material/info:")
    if img.crop is not None:
        with st.expander("the centre crop that was used"):
            st.image(png_bytes(img.crop / 255.0, 1 if img.crop.shape[0] >= 128 else 2), output_format="PNG",
                     caption=f"centre square crop, {img.crop.shape[1]}×{img.crop.shape[0]} px preview")


def missing(what: str, command: str):
    st.info(f"Not made yet: {what}. Make it with:\n\n```bash\n{command}\n```", icon=":material/hourglass_empty:")


# ------------------------------------------------------- state in the URL


def start_state(prefix: str) -> tuple[ViewState, list[str]]:
    """The state a page starts from, and notices about link values that could not be used.
    On entering a page (its θ widget is not in the session yet) the URL wins when it has
    parameters; otherwise the last choices made on any page; otherwise the defaults."""
    shared = st.session_state.get("view", ViewState())
    if f"{prefix}_theta" in st.session_state:
        return shared, []
    qp = st.query_params.to_dict()
    state, notices = parse_query(qp, ViewState()) if qp else (shared, [])
    seed_widgets(prefix, state)
    return state, notices


def seed_widgets(prefix: str, state: ViewState):
    values = {"source": state.source, "index": state.index, "cls": state.cls, "rx": state.rot[0],
              "ry": state.rot[1], "rz": state.rot[2], "bg": state.bg, "seed": state.seed, "theta": state.theta,
              "network": state.network, "race": state.race, "attack": state.attack, "eps": state.eps,
              "cap": state.cap}
    if state.goal is not None:
        values["goal"] = state.goal
    for k, v in values.items():
        st.session_state[f"{prefix}_{k}"] = v


def key(prefix: str, name: str, value) -> str:
    """A widget key, given ``value`` when the session does not hold one (any more)."""
    k = f"{prefix}_{name}"
    if k not in st.session_state:
        st.session_state[k] = value
    return k


def finish_state(state: ViewState, page: str) -> ViewState:
    """Remember the state for the other pages and put it in the URL so the view can be shared."""
    st.session_state["view"] = state
    q = to_query(state, page)
    if st.query_params.to_dict() != q:
        st.query_params.from_dict(q)
    return state


def show_notices(notices: list[str]):
    for n in notices:
        st.warning(n, icon=":material/link_off:")


def theta_slider(prefix: str, state: ViewState, label: str = "threshold θ", help: str | None = None) -> float:
    return float(st.slider(label, 0.0, 1.0, step=0.01, key=key(prefix, "theta", state.theta),
                           help=help or "The triple-staged network answers a class only if its score reaches θ; "
                                        "the paper uses 0.2, 0.45 and 0.7."))


# --------------------------------------------------------------- the image


def image_input(prefix: str, state: ViewState) -> tuple[InputImage | None, ViewState, str | None]:
    """The image chooser (test set / generated scene / upload / drawing), in the sidebar.
    Returns the image (None when there is none yet), the updated state, and a problem to
    show in the main area (an upload that cannot be used). A drawing is made by
    :func:`drawing_canvas`, which the page places."""

    def k(name, value=None):
        return key(prefix, name, value)

    source = st.radio("image", list(SOURCES), format_func=SOURCES.get, key=k("source", state.source))
    changes: dict = {"source": source}
    img, problem = None, None
    if source == "test":
        index = int(st.number_input("test scene index (class = index mod 4: 0 monkey, 1 penguin, 2 aeroplane, "
                                    "3 none)", 0, TEST_SIZE - 1, step=1, key=k("index", state.index)))
        changes["index"] = index
        img = held_out_input(index)
    elif source == "scene":
        cls = st.selectbox("class", list(range(len(CLASSES))), format_func=class_name, key=k("cls", state.cls))
        rot = tuple(float(st.slider(f"rotation {a} (rad)", -0.5, 0.5, step=0.01, key=k(f"r{a}", v),
                                    disabled=cls == len(CLASSES) - 1))
                    for a, v in zip("xyz", state.rot, strict=True))
        bg = st.radio("background", list(BG_SOURCES), format_func=BG_SOURCES.get, key=k("bg", state.bg))
        seed = int(st.number_input("background seed", 0, MAX_SEED, step=1, key=k("seed", state.seed)))
        changes |= {"cls": cls, "rot": rot, "bg": bg, "seed": seed}
        img = scene_input(cls, rot, bg, seed)
    elif source == "upload":
        up = st.file_uploader(f"upload an image ({FORMATS_TEXT})", type=list(UPLOAD_EXTENSIONS),
                              key=f"{prefix}_upload",
                              help="Any size or colour mode: the centre square is cropped, made grey and "
                                   "resized to 64×64.")
        if up is not None:
            try:
                img = upload_input(up.getvalue(), up.name)
                st.session_state["last_upload"] = img  # the small decoded image, not the file
            except UploadError as e:
                problem = str(e)
        elif "last_upload" in st.session_state:  # carried over from another page
            img = st.session_state["last_upload"]
            st.caption(f"Using the image uploaded earlier ({img.caption}); upload another to replace it.")
    else:
        img = st.session_state.get("drawing")
    return img, with_changes(state, **changes), problem


PENS = {"black": "#000000", "white": "#FFFFFF", "dark grey": "#404040"}


def drawing_canvas(prefix: str) -> InputImage | None:
    """A canvas to draw on (streamlit-drawable-canvas), placed where the page calls it; every
    stroke updates the drawing (kept in the session, so it follows the user to the other pages)."""
    from streamlit_drawable_canvas import st_canvas

    c1, c2 = st.columns(2)
    pen = c1.radio("pen", list(PENS), key=key(prefix, "pen", "black"))
    width = c2.slider("pen width", 4, 40, key=key(prefix, "pen_width", 16))
    canvas_key = f"{prefix}_canvas"
    if canvas_key not in st.session_state:  # entering the page: start from the last drawing
        st.session_state[f"{canvas_key}_init"] = st.session_state.get("drawing_json")
    result = st_canvas(stroke_width=width, stroke_color=PENS[pen], background_color="#" + f"{CANVAS_BACKGROUND:02x}" * 3,
                       height=CANVAS_SIDE, width=CANVAS_SIDE, drawing_mode="freedraw",
                       initial_drawing=st.session_state.get(f"{canvas_key}_init"), return_image_data=True,
                       key=canvas_key)
    if result.json_data is not None and result.image_data is not None:
        drawing = InputImage.from_drawing(result.image_data)
        st.session_state["drawing_json"] = result.json_data
        st.session_state["drawing"] = None if is_blank(drawing) else drawing
    return st.session_state.get("drawing")


# ----------------------------------------------------------- experiment results


def _mtime(path) -> float:
    try:
        return max(p.stat().st_mtime for p in path.iterdir())
    except (OSError, ValueError):
        return -1.0


@st.cache_data(show_spinner=False, max_entries=4)
def _runs(root_dir: str, mtime: float):
    from aimeye.experiments import list_runs

    return list_runs(root_dir)


def version() -> float:
    """Changes whenever a file or folder directly under the checkpoint folder does (a cache key)."""
    from pathlib import Path

    return _mtime(Path(root()))


def runs():
    """Every committed results folder (aimeye.experiments.list_runs), read again when one changes."""
    return _runs(root(), version())


@st.cache_resource(show_spinner="Reading the results…", max_entries=8)
def _run(path: str, mtime: float):
    from aimeye.experiments import load_run

    return load_run(path)


def run(path):
    """One results folder (aimeye.experiments.load_run), cached until its files change."""
    from pathlib import Path

    return _run(str(path), _mtime(Path(path)))
