"""One palette for every chart the CLI and the app draw.

A network keeps its colour on every page and in every exported figure; the
three θ of the triple-staged network are shades of one hue, so "triple-staged"
reads as one family. Colours are from the colour-blind-safe Okabe–Ito set.
"""

from __future__ import annotations

from ..paper import CLASSES, network_label

NETWORK_COLOURS = {
    "direct": "#D55E00",  # vermillion
    "direct_param": "#E69F00",  # orange
    "direct_at": "#CC79A7",  # reddish purple: the adversarially trained direct CNN
    "triple": "#0072B2",  # blue
    "triple@0.2": "#56B4E9",  # sky blue
    "triple@0.45": "#0072B2",
    "triple@0.7": "#003F66",  # dark blue
    "triple_at": "#009E73",  # bluish green: the triple-staged network with adversarially trained stages
}
# classes get hues no network has (a chart of one network's class scores sits beside network lines):
# brown, near-black (the penguin's colours), olive, grey
CLASS_COLOURS = dict(zip(CLASSES, ("#8C564B", "#222222", "#999933", "#7F7F7F"), strict=True))
FONT_SIZE = 16  # readable from the back of a classroom


def network_colour(key: str) -> str:
    """The colour of a result key (``direct``, ``triple@0.7``, ``triple_at@0.7`` …)."""
    if key in NETWORK_COLOURS:
        return NETWORK_COLOURS[key]
    return NETWORK_COLOURS.get(key.partition("@")[0], "#555555")


__all__ = ["CLASS_COLOURS", "FONT_SIZE", "NETWORK_COLOURS", "network_colour", "network_label"]
