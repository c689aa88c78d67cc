"""The experiment figures (Berntsen et al. Figs 4–6, robust accuracy vs ε): plotly, with PIL fallbacks.

Every function takes plain result dicts in the schema of :mod:`aimeye.experiments.results`
(a summary, a robust table, a gallery), so the command line and the app draw the same
figure from the same code. Networks carry their user-facing names and one colour each
(:mod:`.palette`); a censored median (failures at the step cap decide it) is marked "≥".
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..paper import CLASSES, GOAL_TITLES
from .palette import FONT_SIZE, network_colour, network_label

PNG_TIMEOUT_S = 90
WIDTH, HEIGHT = 1200, 480


def _networks(block: dict) -> list[str]:
    return [k for k, v in block.items() if v["steps"]["n"]]


def _row_label(summary: dict, goal: str, net: str) -> str:
    v = summary[goal][net]
    return f"{network_label(net)} ({v['success_rate']:.0%} succeed)"


def median_text(st: dict, fmt: str = "{:.3g}") -> str:
    if st.get("median") is None:
        return "—"
    return ("" if st.get("median_exact", True) else "≥ ") + fmt.format(st["median"])


def box_figure(summary: dict, goal: str):
    """Horizontal box plots of steps and distortion per network; whiskers at the 2nd/98th percentiles."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cap = summary["meta"].get("max_steps")
    fig = make_subplots(1, 2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=(f"FGSM steps of 1/255 (a failure counts as the cap, {cap})",
                                        "distortion: RMS of x̃ − x"))
    nets_ = _networks(summary[goal])
    for col, key in ((1, "steps"), (2, "distortion")):
        for net in nets_:
            st = summary[goal][net][key]
            fig.add_trace(go.Box(y=[_row_label(summary, goal, net)], q1=[st["q1"]], median=[st["median"]],
                                 q3=[st["q3"]], lowerfence=[st["p2"]], upperfence=[st["p98"]], orientation="h",
                                 name=network_label(net), marker_color=network_colour(net), showlegend=False),
                          row=1, col=col)
            fig.add_annotation(x=st["median"], y=_row_label(summary, goal, net), text=median_text(st), yshift=22,
                               showarrow=False, font={"size": FONT_SIZE - 3}, row=1, col=col)
    n = summary[goal][nets_[0]]["n"] if nets_ else 0
    sub = (f"{n} attacks per network on {summary['filter']['kept']} test images; whiskers: 2nd/98th percentile; "
           "≥: a median decided by failed attacks (a lower bound)")
    fig.update_layout(title={"text": f"{GOAL_TITLES[goal]}<br><sup>{sub}</sup>"}, width=WIDTH, height=HEIGHT,
                      margin={"l": 10, "r": 20, "t": 100, "b": 40}, template="plotly_white",
                      font={"size": FONT_SIZE - 2})
    fig.update_yaxes(autorange="reversed")
    return fig


def robust_figure(robust: dict):
    """Robust accuracy (per-image worst case over the attack suite) vs ε, with 95 % intervals."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    goals = [g for g in ("fp", "fn") if g in robust["table"]]
    fig = make_subplots(1, len(goals), shared_yaxes=True,
                        subplot_titles=[{"fp": "false positive (object → another object)",
                                         "fn": "false negative (object → none)"}[g] for g in goals])
    for col, goal in enumerate(goals, 1):
        for net, es in robust["table"][goal].items():
            eps = [str(e["eps_255"]) for e in es]
            acc = [e["accuracy"] for e in es]
            lo = [a - e["ci95"][0] if e["ci95"] else 0 for a, e in zip(acc, es, strict=True)]  # no CI: not run
            hi = [e["ci95"][1] - a if e["ci95"] else 0 for a, e in zip(acc, es, strict=True)]
            fig.add_trace(go.Scatter(x=eps, y=acc, mode="lines+markers", name=network_label(net),
                                     line={"color": network_colour(net)}, legendgroup=net, showlegend=col == 1,
                                     error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
                                     customdata=[e["strongest"] or "—" for e in es],
                                     hovertemplate="ε = %{x}/255: %{y:.2f} (strongest: %{customdata})"),
                          row=1, col=col)
    fig.update_xaxes(title_text="ε (L∞, grey levels of 255)", type="category")
    fig.update_yaxes(title_text="robust accuracy (no attack succeeded)", range=[-0.02, 1.02], row=1, col=1)
    fig.update_layout(title=f"Robust accuracy vs ε, {robust['n_images']} images, per-image worst case over all "
                            "attacks; bars: 95 % CI",
                      width=WIDTH, height=HEIGHT, template="plotly_white", font={"size": FONT_SIZE - 2})
    return fig


def font(size: int = 12):
    """DejaVu Sans where installed (it has θ and ≥), else Pillow's default font."""
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


def nice_ticks(hi: float, most: int = 6) -> list[float]:
    """Round ticks 0, s, 2s, … ≤ hi with s one of 1, 2, 5 × 10^k and at most ``most`` of them."""
    if not hi > 0:
        return [0.0]
    for s in (m * 10.0 ** k for k in range(int(np.floor(np.log10(hi))) - 1, 30) for m in (1, 2, 5)):
        if hi / s < most:
            return [float(v) for v in np.arange(0, hi + s * 1e-9, s).round(12)]
    return [0.0, hi]


def pil_boxes(summary: dict, goal: str, path: Path):
    """The box figure drawn with PIL (used when kaleido/Chrome cannot write the PNG)."""
    from PIL import Image, ImageDraw

    nets_ = _networks(summary[goal])
    w, left, top, row_h = WIDTH, 360, 84, 62
    h = top + row_h * len(nets_) + 60
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    d.text((10, 6), GOAL_TITLES[goal], fill="black", font=font(16))
    cap = summary["meta"].get("max_steps")
    d.text((10, 30), "whiskers: 2nd/98th percentile; ≥: a median decided by failed attacks", fill="#555555",
           font=font(11))
    for x0, x1, key, title in ((left, 740, "steps", f"FGSM steps (cap {cap} = failed)"),
                               (800, w - 30, "distortion", "distortion (RMS of x̃ − x)")):
        hi = max([summary[goal][n][key]["p98"] for n in nets_] or [1.0]) * 1.05 or 1.0
        d.text((x0, 54), title, fill="black", font=font(13))  # below the subtitle

        def sx(v, x0=x0, x1=x1, hi=hi):
            return x0 + (x1 - x0) * (v / hi)

        base = top + row_h * len(nets_)
        d.line([(x0, base), (x1, base)], fill="black")
        for t in nice_ticks(hi):
            d.line([(sx(t), top), (sx(t), base)], fill="#e6e6e6")
            d.text((sx(t), base + 5), f"{t:g}", fill="black", font=font(11), anchor="ma")
        for i, net in enumerate(nets_):
            st = summary[goal][net][key]
            yc = top + row_h * i + row_h // 2
            if key == "steps":
                d.text((10, yc - 7), _row_label(summary, goal, net), fill="black", font=font(12))
            c = network_colour(net)
            d.line([(sx(st["p2"]), yc), (sx(st["p98"]), yc)], fill=c, width=2)
            d.rectangle([sx(st["q1"]), yc - 16, max(sx(st["q3"]), sx(st["q1"]) + 1), yc + 16], fill="#eeeeee",
                        outline=c, width=2)
            d.line([(sx(st["median"]), yc - 16), (sx(st["median"]), yc + 16)], fill=c, width=3)
            d.text((sx(st["median"]) + 4, yc - 30), median_text(st), fill="black", font=font(11))
    im.save(path)


def pil_robust(robust: dict, path: Path):
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (WIDTH, HEIGHT), "white")
    d = ImageDraw.Draw(im)
    d.text((10, 10), f"Robust accuracy vs ε ({robust['n_images']} images, worst case over attacks)", fill="black",
           font=font(16))
    eps = robust["eps_255"]
    legend_x = 60
    for p, goal in enumerate(g for g in ("fp", "fn") if g in robust["table"]):
        x0, x1, y0, y1 = 60 + p * 580, 560 + p * 580, 60, 400
        d.rectangle([x0, y0, x1, y1], outline="black")
        d.text((x0, y1 + 25), {"fp": "false positive", "fn": "false negative"}[goal]
               + ": ε (grey levels of 255) →   robust accuracy ↑", fill="black", font=font(13))
        def sx(j, x0=x0, x1=x1):
            return x0 + 20 + (x1 - x0 - 40) * j / max(1, len(eps) - 1)

        def sy(a, y0=y0, y1=y1):
            return y1 - (y1 - y0) * a

        for a in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
            d.line([(x0, sy(a)), (x1, sy(a))], fill="#e6e6e6")
            d.text((x0 - 6, sy(a)), f"{a:g}", fill="black", font=font(11), anchor="rm")
        for j, e in enumerate(eps):
            d.text((sx(j), y1 + 5), str(e), fill="black", font=font(11), anchor="ma")
        for k, (net, es) in enumerate(robust["table"][goal].items()):
            c = network_colour(net)
            run = [(j, e) for j, e in enumerate(es) if e["accuracy"] is not None]  # an ε not run: no point
            d.line([(sx(j), sy(e["accuracy"])) for j, e in run], fill=c, width=2)
            for j, e in run:
                if e.get("ci95"):
                    d.line([(sx(j), sy(e["ci95"][0])), (sx(j), sy(e["ci95"][1]))], fill=c, width=1)
                d.ellipse([sx(j) - 3, sy(e["accuracy"]) - 3, sx(j) + 3, sy(e["accuracy"]) + 3], fill=c)
            if p == 0:  # one legend row under both panels
                d.text((legend_x, HEIGHT - 28), network_label(net), fill=c, font=font(12))
                legend_x += d.textlength(network_label(net), font=font(12)) + 28
    im.save(path)


def write_png(fig, path: Path, fallback) -> str:
    """PNG via kaleido (Chrome), else the PIL drawing; returns the backend used and never raises."""
    if Path("/usr/bin/chromium").exists():
        os.environ.setdefault("BROWSER_PATH", "/usr/bin/chromium")
    err: list = []

    def work():
        try:
            fig.write_image(str(path), width=fig.layout.width or WIDTH, height=fig.layout.height or HEIGHT)
        except Exception as e:  # noqa: BLE001 — kaleido raises many kinds; the fallback covers all
            err.append(e)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    th.join(PNG_TIMEOUT_S)
    if th.is_alive() or err or not path.exists():
        fallback(path)
        return f"pil ({type(err[0]).__name__ if err else 'timeout'})"
    return "kaleido"


def gallery_image(gallery: dict, network: str, columns: int = 10, factor: int = 3, monkey: int = 0):
    """Fig. 5: original / adversarial / monkey rendered at the network's estimated rotation and blended
    onto the original, for false positives classified as monkey, ordered by distortion."""
    from PIL import Image, ImageDraw

    from ..render import render_mesh, resolve_mesh
    from ..scenes import blend

    sel = np.nonzero(np.asarray(gallery["network"]).astype(str) == network)[0] if gallery else np.zeros(0, int)
    sel = sel[np.argsort(gallery["distortion"][sel], kind="stable")] if len(sel) else sel
    pick = sel[np.unique(np.linspace(0, len(sel) - 1, min(columns, len(sel))).round().astype(int))] if len(sel) else sel
    tile, pad, head, foot, side = 64 * factor, 8, 44, 44, 120
    w = max(side + max(1, len(pick)) * (tile + pad) + pad, 700)
    h = head + 3 * (tile + pad) + foot
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    d.text((pad, 6), f"{network_label(network)}: false positives classified as {CLASSES[monkey]}, by distortion",
           fill=0, font=font(18))
    for r, name in enumerate(("original", "adversarial", "projection")):
        d.text((pad, head + r * (tile + pad) + tile // 2 - 8), name, fill=0, font=font(15))
    if not len(pick):
        d.text((side, head + 20), "none within the step cap", fill=0, font=font(16))
        return im
    ren, alpha = render_mesh(resolve_mesh(monkey), np.asarray(gallery["rotation"][pick], np.float32))
    for j, i in enumerate(pick):
        orig = gallery["original"][i].astype(np.float32) / 255
        adv = gallery["adversarial"][i].astype(np.float32) / 255
        x = side + j * (tile + pad)
        for r, img in enumerate((orig, adv, blend(ren[j], alpha[j], orig))):
            t = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((tile, tile), Image.NEAREST)
            im.paste(t, (x, head + r * (tile + pad)))
        y = head + 3 * (tile + pad)
        d.text((x, y), f"d = {gallery['distortion'][i]:.3f}", fill=0, font=font(15))
        d.text((x, y + 20), f"{int(gallery['steps'][i])} steps, {CLASSES[int(gallery['label'][i])]}", fill=0,
               font=font(13))
    return im


def draw_all(out: Path, summary: dict | None, gallery: dict | None, robust: dict | None, png: bool = True,
             gallery_networks=("direct_param", "triple@0.7")) -> dict:
    """Write every figure the data allows into ``out``; returns {file: backend}. ``png=False`` writes
    the HTML figures only (and skips the Fig. 5 galleries, which need the renderer)."""
    done = {}
    for goal, name in (("fp", "fig4"), ("fn", "fig6")):
        if not summary or goal not in summary:
            continue
        fig = box_figure(summary, goal)
        fig.write_html(out / f"{name}.html", include_plotlyjs="cdn")
        done[f"{name}.html"] = "plotly"
        if png:
            done[f"{name}.png"] = write_png(fig, out / f"{name}.png", lambda p, g=goal: pil_boxes(summary, g, p))
    if gallery is not None and png:
        for net in gallery_networks:
            name = f"fig5_{net.replace('@', '_')}.png"
            gallery_image(gallery, net).save(out / name)
            done[name] = "pil"
    if robust:
        fig = robust_figure(robust)
        fig.write_html(out / "robust.html", include_plotlyjs="cdn")
        done["robust.html"] = "plotly"
        if png:
            done["robust.png"] = write_png(fig, out / "robust.png", lambda p: pil_robust(robust, p))
    return done
