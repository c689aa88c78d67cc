"""Attack stepper: push an image towards another verdict one gradient-sign step at a time.

Layout only: the attack session (aimeye.app.session) owns the configuration, the runs,
the scrub position and play; this page draws it and turns widget events into calls.
"""

from __future__ import annotations

import streamlit as st

from aimeye.app.analysis import amplify, weighted_similarity
from aimeye.app.inputs import class_name
from aimeye.app.session import FASTEST, RACE, SPEEDS, AttackSession, image_id, new_config
from aimeye.app.state import ATTACK_NAMES, CAP_RANGE, EPS_RANGE, goal_for, goal_options, with_changes
from aimeye.app.tables import race_rows
from aimeye.app.wording import drawing_heading, goal_kind, goal_label, iterate_verdict_text, network_title
from aimeye.figures.app import attack_figure
from aimeye.figures.palette import network_colour
from aimeye.paper import AT_NETWORKS, CLASSES, N_OBJECTS, NETWORK_LABELS, NETWORKS, is_triple
from aimeye.viz import png_bytes
from views import _ui as ui

P = "atk"
# While playing, the session's thread takes the steps. The adversarial images and verdicts redraw every
# 0.4 s (over twice a second); the chart, the drawings and the race table once a second, static while
# playing: every redraw costs the browser CPU that the stepping then lacks on two cores (plotly's and
# the drawings' the most; benchmarks/bench_app_play.py measures play speed and the browser's cores).
TICK_S, BOARD_S = 0.4, 1.0

models = ui.models_or_stop()
state, notices = ui.start_state(P)
session: AttackSession | None = st.session_state.get("attack_session")

with st.sidebar:
    st.header("image")
    img, state, problem = ui.image_input(P, state)
    if state.source == "draw":
        img = ui.drawing_canvas(P)
    st.header("attack")
    race = st.toggle("race: direct vs triple-staged", key=ui.key(P, "race", state.race),
                     help="Attack the direct CNN and the triple-staged network from the same image.")
    network = state.network
    if not race:  # the adversarially trained networks too, where their checkpoints ship
        choices = list(NETWORKS) + [n for n in AT_NETWORKS if getattr(models, n, None) is not None]
        if network not in choices:
            notices.append(f"The {NETWORK_LABELS[network]} network does not ship here; showing the triple-staged one.")
            network = "triple"
        network = st.selectbox("network under attack", choices, format_func=NETWORK_LABELS.get,
                               key=ui.key(P, "network", network))
    theta = ui.theta_slider(P, state, "threshold θ of the triple-staged network")
    label = img.label if img is not None else (session.config.label if session else 1)
    if img is not None and label is None:
        guess = int(ui.analysis(ui.root(), img.key).direct_probs.argmax())
        label = st.selectbox("true class of this image", list(range(len(CLASSES))), format_func=class_name,
                             key=ui.key(P, f"label_{image_id(img.image)[:12]}", guess),
                             help="The attack pushes the verdict away from this class. Our guess: what the "
                                  "direct CNN says.")
    goals = goal_options(label)
    if st.session_state.get(f"{P}_goal") not in goals:  # a new image of the old goal's class
        st.session_state[f"{P}_goal"] = goal_for(state, label)
    goal = st.selectbox("goal: make it say", goals, key=f"{P}_goal", format_func=goal_label)
    attack = st.radio("attack", list(ATTACK_NAMES), format_func=ATTACK_NAMES.get, key=ui.key(P, "attack",
                                                                                               state.attack))
    eps = state.eps
    if attack == "pgd":
        eps = st.slider("ε, the L∞ budget (in 1/255)", *EPS_RANGE, key=ui.key(P, "eps", state.eps))
    cap = int(st.number_input("step cap", *CAP_RANGE, step=10, key=ui.key(P, "cap", state.cap),
                              help="An attack that has not reached its goal after this many steps stops."))

state = ui.finish_state(with_changes(state, race=race, network=network, theta=theta, goal=goal, attack=attack,
                                     eps=eps, cap=cap), "attack")
ui.show_notices(notices)
if problem:
    st.error(problem, icon=":material/broken_image:")
    st.stop()
if img is None:
    st.info("Draw something on the canvas in the sidebar." if state.source == "draw" else
            "Upload an image in the sidebar to attack it.", icon=":material/image:")
    st.stop()

networks = RACE if race else (network,)
config = new_config(img.image, label, networks=networks, theta=theta, goal=goal, attack=attack, eps=eps, cap=cap)
if session is None:
    session = st.session_state["attack_session"] = AttackSession(models, img.image, config)
else:
    session.configure(img.image, config)
session.poll()


def _speed():
    session.speed = SPEEDS[st.session_state[f"{P}_speed"]]


# --- header and controls (outside the live part: they change only on a click) --------------
st.markdown(f"#### Attack: {class_name(label)} → {class_name(goal)} ({goal_kind(goal)}) · "
            + " vs ".join(NETWORK_LABELS[n] for n in networks))
playing = session.playing
c = st.columns([1.2, 0.9, 1.1, 1.0, 1.6, 3.2], vertical_alignment="center")
# Play/pause acts in this full run, not in an on_click callback: Streamlit re-ran the callback of one click
# when a play tick (a fragment run) raced it, which undid a pause; a fragment run never gets here. It does
# what the button said when clicked (drawn by the last full run), even if play stopped by itself since.
said = st.session_state.get(f"{P}_play_said", "play")
st.session_state[f"{P}_play_said"] = "pause" if playing else "play"
if c[0].button("⏸ pause" if playing else "▶ play", key=f"{P}_play", type="primary",
               disabled=session.done and not playing, width="stretch",
               help="Step on until every attack reaches its goal or the cap; play always shows the newest step."):
    session.press(said, SPEEDS[st.session_state[f"{P}_speed"]])
    st.rerun()  # redraw the controls and the live part for the new state
c[1].button("step", key=f"{P}_step1", on_click=session.step, args=(1,), width="stretch")
c[2].button("step ×10", key=f"{P}_step10", on_click=session.step, args=(10,), width="stretch")
c[3].button("↺ reset", key=f"{P}_reset", on_click=session.reset, width="stretch")
c[4].selectbox("play speed", list(SPEEDS), key=ui.key(P, "speed", FASTEST), on_change=_speed,
               format_func=lambda s: f"speed: {s}", label_visibility="collapsed")
c[5].caption(f"{ATTACK_NAMES[attack]}{f', ε = {eps}/255' if attack == 'pgd' else ''}; θ = {theta:.2f}; "
             f"cap {cap} steps.")
if session.message:
    st.info(session.message, icon=":material/sync:")


def _scrub(key: str):
    session.set_scrub(st.session_state[key])


@st.fragment(run_every=TICK_S if playing else None)
def live():
    """The adversarial images and the verdicts: at every tick while playing."""
    session.poll()
    if playing and not session.playing:  # play ended (every goal reached, or the cap): redraw the controls
        st.rerun()
    latest = session.latest_step
    if session.playing:  # no slider while playing: a fresh one every tick costs the browser, and play follows
        st.progress(min(latest / cap, 1.0), text=f"playing: step {latest} of at most {cap} (pause to scrub back)")
    elif latest > 0:  # a fresh slider whenever the newest step moves: it always starts at the step shown
        k = f"{P}_scrub_{latest}"
        st.slider("scrub through the recorded steps", 0, latest, value=session.shown_step, key=k,
                  on_change=_scrub, args=(k,))
    shown = session.shown_step  # one step for the whole frame, though play goes on meanwhile
    cols = st.columns([1] + [2] * len(networks), gap="medium")
    with cols[0]:
        st.markdown("**input**")
        ui.show(img.image, f"start: {class_name(label)}")
    for col, name in zip(cols[1:], networks, strict=True):
        it = session.frame(name, shown)
        with col:
            st.html(f"<div style='border-left: 8px solid {network_colour(name)}; padding-left: 8px; "
                    f"font-weight: 600; font-size: 1.15rem'>{network_title(name, theta)}</div>")
            a, b = st.columns(2)
            a.image(png_bytes(it.image, 4), caption=f"adversarial image, step {it.step}", output_format="PNG")
            b.image(png_bytes(amplify(it.perturbation), 4), caption="perturbation, amplified (grey: unchanged)",
                    output_format="PNG")
            flip = session.flip(name)
            box = st.success if flip else (st.error if session.runs[name].done else st.info)
            box(f"##### {iterate_verdict_text(it.scores, name, theta)}\n{session.status(name)}  \n"
                f"step {it.step} · distortion {it.distortion:.4f} · L∞ {round(it.linf * 255)}/255")


@st.fragment(run_every=BOARD_S if playing else None)
def board():
    """The chart, the triple-staged network's drawings and the race table: once a second while playing."""
    live_now = session.playing
    shown = session.shown_step
    drawer = next((n for n in networks if is_triple(n)), None)  # triple or triple_at: it draws
    # before the chart: while playing, the run keeps only its newest explanations, and one read later
    # would often have to be recomputed here
    ex = session.explanation(shown, drawer) if drawer is not None else None
    st.plotly_chart(attack_figure({n: r.history for n, r in session.runs.items()}, theta, session.flips(),
                                  shown if not session.following else None), key=f"{P}_chart",
                    config={"displayModeBar": False, "staticPlot": live_now})
    if ex is not None:
        st.markdown(drawing_heading(drawer, session.frame(drawer, shown).step))
        ui.show_row([ex[c]["projection"] for c in range(N_OBJECTS)]
                    + [weighted_similarity(ex[c]) for c in range(N_OBJECTS)],
                    [f"{CLASSES[c]}: projection" for c in range(N_OBJECTS)]
                    + [f"{CLASSES[c]}: match, score {ex[c]['score']:.3f}" for c in range(N_OBJECTS)], factor=3)
    if len(networks) > 1:
        st.markdown("**race**")
        st.table(race_rows(session), border="horizontal", hide_index=True)


live()
board()

d = st.columns(2 * len(networks))
for i, name in enumerate(networks):
    label_ = NETWORK_LABELS[name]
    d[2 * i].download_button(f"GIF: {label_}", data=lambda n=name: session.gif(n), file_name=f"attack_{name}.gif",
                             mime="image/gif", key=f"{P}_gif_{name}", on_click="ignore")
    d[2 * i + 1].download_button(f"CSV: {label_}", data=lambda n=name: session.csv(n),
                                 file_name=f"attack_{name}.csv", mime="text/csv", key=f"{P}_csv_{name}",
                                 on_click="ignore")
