"""Every chart in one package, shared by the command line and the app.

``palette`` holds the one palette and the user-facing names; ``experiments``
draws the paper's Figs 4–6 and the robustness curves; ``app`` draws the
interactive views (similarity maps, scores, distortion, θ explorer).
"""

from .palette import CLASS_COLOURS, FONT_SIZE, NETWORK_COLOURS, network_colour, network_label

__all__ = ["CLASS_COLOURS", "FONT_SIZE", "NETWORK_COLOURS", "network_colour", "network_label"]
