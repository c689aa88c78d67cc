"""Widgets and cached resources shared by the pages. Views only: every number comes from
:mod:`aimeye.app_support` (which never imports streamlit)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from aimeye import CheckpointError
from aimeye import app_support as A
from aimeye.viz import png_bytes

# ----------------------------------------------------------------- entering


APP = Path(__file__).resolve().parent.parent / "app.py"


def enter():
    """Call first on every page. A folder named ``pages/`` next to ``app.py`` makes Streamlit
    start in its legacy multipage mode, in which a deep link (``/inspect?theta=0.45``) as the
    first request of a fresh server runs the page file alone: no ``app.py``, so no
    navigation and no page config (AppTest does the same on every page run). Here the
    legacy mode is switched off and ``app.py`` runs in this very script run, selecting
    this same page; then the outer run stops. Nothing is lost: no rerun, so widget
    events (a button click) and the URL are kept."""
    from streamlit.runtime.pages_manager import PagesManager

    if not getattr(PagesManager, "uses_pages_directory", False):
        return
    PagesManager.uses_pages_directory = False
    exec(compile(APP.read_text(), str(APP), "exec"), {"__name__": "__main__", "__file__": str(APP)})  # noqa: S102
    st.stop()


# ----------------------------------------------------------- cached resources


@st.cache_resource(show_spinner="Loading the networks…")
def _models(root: str):
    return A.load_models(root)


def root() -> str:
    return str(A.checkpoint_dir())


def models_or_stop():
    """The shared, frozen models; on a missing or corrupt checkpoint, a friendly error and stop."""
    try:
        return _models(root())
    except CheckpointError as e:
        st.error(A.checkpoint_message(e), icon=":material/neurology:")
        st.code(A.TRAIN_COMMAND, language="bash")
        st.stop()


@st.cache_data(show_spinner=False, max_entries=64)
def analysis(root_dir: str, image_key: bytes) -> A.Analysis:
    """Every network's view of one image, cached per image (the key is its pixels)."""
    return A.analyse(_models(root_dir), A.as_batch(A.image_from_key(image_key)))


@st.cache_data(show_spinner=False, max_entries=64)
def explanation(root_dir: str, image_key: bytes) -> dict:
    """The triple network's explanation of one image (for scrubbing back through an attack)."""
    return A.explain_image(_models(root_dir), A.image_from_key(image_key))


@st.cache_data(show_spinner=False, max_entries=64)
def held_out_input(index: int) -> A.InputImage:
    return A.InputImage.from_scene(A.held_out_scene(index))


@st.cache_data(show_spinner=False, max_entries=64)
def scene_input(cls: int, rot: tuple[float, float, float], bg: str, seed: int) -> A.InputImage:
    return A.InputImage.from_scene(A.make_scene(cls, rot, bg, seed))


@st.cache_data(show_spinner=False, max_entries=16)
def upload_input(data: bytes, name: str) -> A.InputImage:
    return A.InputImage.from_upload(A.decode_upload(data, name), name)


def show(img, caption: str | None = None, factor: int = 4):
    """A crisp (nearest-neighbour) PNG of a [0,1] greyscale image."""
    st.image(png_bytes(img, factor), caption=caption)


def show_row(images, captions, factor: int = 2):
    """Images side by side in equal columns, each a crisp PNG that fills its column
    (app.py keeps any further browser scaling nearest-neighbour)."""
    for col, img, cap in zip(st.columns(len(images)), images, captions):
        col.image(png_bytes(img, factor), caption=cap, width="stretch")


# ------------------------------------------------------- state in the URL


def start_state(prefix: str) -> A.ViewState:
    """The state a page starts from. On entering a page (its widgets are not in the
    session yet) the URL wins when it has parameters; otherwise the last choices
    made on any page; otherwise the defaults."""
    if f"{prefix}_theta" not in st.session_state:
        qp = st.query_params.to_dict()
        state = A.parse_query(qp) if qp else st.session_state.get("view", A.ViewState())
        seed_widgets(prefix, state)
        return state
    return st.session_state.get("view", A.ViewState())


def seed_widgets(prefix: str, state: A.ViewState):
    values = {"source": state.source, "index": state.index, "cls": state.cls, "rx": state.rot[0],
              "ry": state.rot[1], "rz": state.rot[2], "bg": state.bg, "seed": state.seed, "theta": state.theta,
              "network": state.network}
    for k, v in values.items():
        st.session_state[f"{prefix}_{k}"] = v


def finish_state(state: A.ViewState) -> A.ViewState:
    """Remember the state for the other pages and put it in the URL so the view can be shared."""
    state = A.normalise_state(state)
    st.session_state["view"] = state
    q = A.to_query(state)
    if st.query_params.to_dict() != q:
        st.query_params.from_dict(q)
    return state


def _key(prefix: str, name: str, value) -> str:
    """A widget key, given the state's value when the session does not hold one (any more)."""
    key = f"{prefix}_{name}"
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def theta_slider(prefix: str, state: A.ViewState, label: str = "threshold θ", help: str | None = None) -> float:
    return float(st.slider(label, 0.0, 1.0, step=0.01, key=_key(prefix, "theta", state.theta),
                           help=help or "The triple-staged network answers a class only if its score reaches θ; "
                                        "the paper uses 0.2, 0.45 and 0.7."))


def network_select(prefix: str, state: A.ViewState, label: str = "network") -> str:
    return st.selectbox(label, list(A.NETWORKS), format_func=A.NETWORKS.get, key=_key(prefix, "network", state.network))


def image_input(prefix: str, state: A.ViewState) -> tuple[A.InputImage | None, A.ViewState]:
    """The image chooser (test set / generated scene / upload). Returns the image (None when
    an upload is missing or unusable: the error is already shown) and the updated state."""

    def k(name, value=None):
        return _key(prefix, name, value)

    source = st.radio("image", list(A.SOURCES), format_func=A.SOURCES.get, key=k("source", state.source),
                      horizontal=True)
    changes: dict = {"source": source}
    img = None
    if source == "test":
        index = int(st.number_input("test scene index (class = index mod 4: 0 monkey, 1 penguin, 2 aeroplane, "
                                    "3 none)", 0, A.TEST_SIZE - 1, step=1, key=k("index", state.index)))
        changes["index"] = index
        img = held_out_input(index)
    elif source == "scene":
        cls = st.selectbox("class", list(range(len(A.CLASSES))), format_func=A.class_name, key=k("cls", state.cls))
        rot = tuple(float(st.slider(f"rotation {a} (rad)", -0.5, 0.5, step=0.01, key=k(f"r{a}", v),
                                    disabled=cls == A.NONE)) for a, v in zip("xyz", state.rot))
        bg = st.radio("background", list(A.BG_SOURCES), format_func=A.BG_SOURCES.get, key=k("bg", state.bg))
        seed = int(st.number_input("background seed", 0, A.MAX_SEED, step=1, key=k("seed", state.seed)))
        changes |= {"cls": cls, "rot": rot, "bg": bg, "seed": seed}
        img = scene_input(cls, rot, bg, seed)
    else:
        up = st.file_uploader("upload an image (PNG, JPEG, WebP, BMP, GIF, TIFF)", type=list(A.UPLOAD_EXTENSIONS),
                              key=f"{prefix}_upload",
                              help="Any size or colour mode: the centre square is cropped, "
                                   "converted to grey and resized to 64×64.")
        if up is not None:
            try:
                img = upload_input(up.getvalue(), up.name)
                st.session_state["last_upload"] = img  # the small decoded image, not the file
            except A.UploadError as e:
                st.error(str(e), icon=":material/broken_image:")
        elif "last_upload" in st.session_state:  # carried over from another page
            img = st.session_state["last_upload"]
            st.caption(f"Using the image uploaded earlier ({img.caption}); upload another to replace it.")
        else:
            st.info("Upload an image to see what the networks make of it.")
    return img, A.with_changes(state, **changes)


def show_input(img: A.InputImage, factor: int = 4):
    show(img.image, img.caption, factor)
    for note in img.notes:
        st.warning(note, icon=":material/info:")
    if img.crop is not None:
        with st.expander("the centre crop that was used"):
            st.image(png_bytes(img.crop / 255.0, 1 if img.crop.shape[0] >= 128 else 2),
                     caption=f"centre square crop, {img.crop.shape[1]}×{img.crop.shape[0]} px preview")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


@st.cache_data(show_spinner=False, max_entries=8)
def _summary(root_dir: str, mtime: float):
    return A.load_summary(root_dir)


@st.cache_data(show_spinner=False, max_entries=4)
def _attack_rows(root_dir: str, mtime: float):
    return A.load_attacks_csv(root_dir)


def summary() -> dict | None:
    """``results/summary.json``, read again only when the file changes."""
    return _summary(root(), _mtime(A.results_dir(root()) / "summary.json"))


def attack_rows() -> list[dict] | None:
    return _attack_rows(root(), _mtime(A.results_dir(root()) / "attacks.csv"))


def results_file(name: str) -> Path:
    return A.results_dir(root()) / name


def missing(what: str, command: str):
    st.info(f"Not made yet: {what}. Make it with:\n\n```bash\n{command}\n```", icon=":material/hourglass_empty:")
