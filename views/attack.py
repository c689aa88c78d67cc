"""Attack stepper: push an image towards another verdict one gradient-sign step at a time."""

from __future__ import annotations

import hashlib

import streamlit as st

from aimeye import app_support as A
from pages import _ui as ui

ui.enter()

P = "atk"
TICK_S = 1.0  # play: one fragment rerun per tick ...
TICK_BUDGET_S = 0.7  # ... stepping for at most this long (a triple step with its explanation: ~30 ms)
TICK_STEPS = 25
DEFAULT_CAP = 1000  # the default demo (penguin → aeroplane, θ = 0.7) flips the triple network after ~500 steps

st.title("Attack stepper")
st.caption("Iterative FGSM (the paper's §3.2): every step moves each pixel by 1/255 against the gradient "
           "towards the goal, until the verdict flips. The direct classifier usually flips after a few invisible "
           "steps; against the triple-staged network the perturbation has to start *drawing* the target object.")

models = ui.models_or_stop()
state = ui.start_state(P)


def _default(key: str, value, allowed=None):
    if key not in st.session_state or (allowed is not None and st.session_state[key] not in allowed):
        st.session_state[key] = value
    return key


with st.sidebar:
    st.header("image")
    img, state = ui.image_input(P, state)
    st.header("attack")
    race = st.toggle("race: direct vs triple-staged", key=_default(f"{P}_race", True),
                     help="Attack the direct classifier and the triple-staged network from the same image.")
    network = "triple" if race else ui.network_select(P, state, "network under attack")
    theta = ui.theta_slider(P, state, "threshold θ of the triple-staged network")
    state = ui.finish_state(A.with_changes(state, theta=theta, network=network))
    if img is None:
        st.stop()
    label = img.label
    if label is None:
        guess = int(ui.analysis(ui.root(), img.key).direct_probs.argmax())
        label = st.selectbox("true class of the upload", list(range(len(A.CLASSES))), format_func=A.class_name,
                             key=_default(f"{P}_label", guess))
    targets = [c for c in range(len(A.CLASSES)) if c != label]
    default_target = A.default_target(label) if label != A.NONE else 0
    target = st.selectbox("goal: make it say", targets, key=_default(f"{P}_target", default_target, targets),
                          format_func=A.target_label)
    attack = st.radio("attack", list(A.ATTACKS), format_func=A.ATTACKS.get, key=_default(f"{P}_attack", "fgsm"))
    eps = 8
    if attack == "pgd":
        eps = st.slider("ε, the L∞ budget (in 1/255)", 1, 64, key=_default(f"{P}_eps", 8))
    max_steps = int(st.number_input("step cap", 10, 2000, step=10, key=_default(f"{P}_cap", DEFAULT_CAP),
                                    help="The paper's figures clip at 1500 steps."))

mod = A.attacks_module()
if mod is None:
    st.info(A.attacks_problem() or A.ATTACKS_MISSING, icon=":material/construction:")
    st.stop()

networks = ("direct", "triple") if race else (network,)
sig = (hashlib.sha1(img.key).hexdigest(), label, networks, theta, target, attack, eps, max_steps)
run = st.session_state.get(f"{P}_run")
if run is None or run["sig"] != sig:
    run = {"sig": sig, "steppers": {n: A.new_stepper(models, n, theta, img.x, label, target, attack, eps / 255,
                                                     max_steps) for n in networks}}
    st.session_state[f"{P}_run"] = run
    st.session_state[f"{P}_playing"] = False
    st.session_state[f"{P}_scrub"] = 0


def _toggle_play():
    st.session_state[f"{P}_playing"] = not st.session_state.get(f"{P}_playing", False)


def _reset():
    st.session_state.pop(f"{P}_run", None)


playing = bool(st.session_state.get(f"{P}_playing"))
top = st.columns([1, 1, 4])
with top[0]:
    ui.show(img.image, f"start: {A.class_name(label)}", 2)
with top[1]:
    st.button("⏸ pause" if playing else "▶ play", key=f"{P}_play", on_click=_toggle_play, type="primary",
              help=f"Step continuously (up to {TICK_STEPS} steps a second) until every attack reaches its goal "
                   "or the step cap.")
    st.button("↺ reset", key=f"{P}_reset", on_click=_reset)
with top[2]:
    goal, _ = A.goal_for(target)
    st.markdown(f"**Goal:** make {' and '.join(A.NETWORKS[n] for n in networks)} say **{A.class_name(target)}** "
                f"({'false negative' if goal == 'fn' else 'false positive'}) starting from a "
                f"**{A.class_name(label)}** image. {A.ATTACKS[attack]}"
                f"{f', ε = {eps}/255' if attack == 'pgd' else ''}; cap {max_steps} steps.")


@st.fragment(run_every=TICK_S if playing else None)
def live():
    run = st.session_state[f"{P}_run"]
    steppers = run["steppers"]
    b = st.columns([1, 1, 4])
    n = 0
    if b[0].button("step", key=f"{P}_step1"):
        n = 1
    if b[1].button("step ×10", key=f"{P}_step10"):
        n = 10
    is_playing = st.session_state.get(f"{P}_playing", False)
    latest_before = max(len(s.history) for s in steppers.values()) - 1
    if n or is_playing:
        for s in steppers.values():
            A.step(s, n or TICK_STEPS, budget_s=TICK_BUDGET_S if is_playing else None)
        if st.session_state.get(f"{P}_scrub", 0) >= latest_before:  # follow the newest step
            st.session_state[f"{P}_scrub"] = max(len(s.history) for s in steppers.values()) - 1
    if is_playing and all(s.done for s in steppers.values()):
        st.session_state[f"{P}_playing"] = False
        st.rerun()
    latest = max(len(s.history) for s in steppers.values()) - 1
    if latest > 0:
        st.session_state[f"{P}_scrub"] = min(st.session_state.get(f"{P}_scrub", latest), latest)
        scrub = st.slider("scrub through the recorded steps", 0, latest, key=f"{P}_scrub")
    else:
        scrub = 0
        st.caption("Press **step** or **▶ play**.")

    cols = st.columns(len(steppers))
    for (name, s), col in zip(steppers.items(), cols):
        it = s.history[min(scrub, len(s.history) - 1)]
        summary = A.iterate_summary(it, name, theta)
        flip = A.flip_point(s)
        with col:
            st.markdown(f"### {A.NETWORKS[name]}" + (f" (θ = {theta:.2f})" if name == "triple" else ""))
            if flip:
                st.success(f"Flipped to **{A.class_name(flip['verdict'])}** at step **{flip['step']}**, "
                           f"distortion {flip['distortion']:.4f}.")
            elif s.done:
                st.error(f"Not flipped within the cap of {max_steps} steps.")
            else:
                st.info(f"Not flipped yet ({len(s.history) - 1} steps so far).")
            st.markdown(f"**verdict:** {summary['verdict_text']}")
            m = st.columns(3)
            m[0].metric("step", summary["step"])
            m[1].metric("distortion", f"{summary['distortion']:.4f}", help="√(mean Δ²) on the 0–1 scale (the "
                                                                           "paper's formula)")
            m[2].metric("L∞", f"{round(summary['linf'] * 255)}/255")
            ui.show_row([it.image, A.amplify(it.perturbation)],
                        ["adversarial image", "perturbation, amplified (grey = unchanged)"], factor=3)
            st.plotly_chart(A.scores_figure(s.history, name, theta), key=f"{P}_scores_{name}")
            ex = A.explanation_arrays(it.explanation)
            if not ex and name == "triple":  # only the newest iterates keep theirs
                ex = ui.explanation(ui.root(), A.as_batch(it.image).numpy().tobytes())
            if ex:
                st.markdown("**what the triple network draws and how well it matches**")
                classes = sorted(ex)
                ui.show_row([ex[c]["projection"] for c in classes],
                            [f"{A.class_name(c)}: projection" for c in classes], factor=2)
                ui.show_row([ex[c]["similarity"] * ex[c]["pooled_alpha"] / max(float(ex[c]["pooled_alpha"].max()),
                                                                               1e-6) for c in classes],
                            [f"{A.class_name(c)}: similarity × ā, score {float(ex[c]['score']):.3f}"
                             for c in classes], factor=2)
            d = st.columns(2)
            d[0].download_button("GIF of the attack", data=lambda s=s: s.to_gif(4), file_name=f"attack_{name}.gif",
                                 mime="image/gif", key=f"{P}_gif_{name}", on_click="ignore")
            d[1].download_button("CSV of every step", data=lambda s=s: s.to_csv(), file_name=f"attack_{name}.csv",
                                 mime="text/csv", key=f"{P}_csv_{name}", on_click="ignore")

    st.plotly_chart(A.distortion_figure({A.NETWORKS[n]: s.history for n, s in steppers.items()}), key=f"{P}_dist")
    if len(steppers) > 1:
        st.markdown("**race**")
        st.dataframe(A.race_rows(steppers, theta), hide_index=True)


live()
