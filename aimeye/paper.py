"""The paper's constants, in one place (Berntsen, Kuijper, Heskes; §3–§4).

Every other module imports these; none redefines them. Plain Python only (no
torch), so that meshes, scenes, nets, attacks, experiments and the app can all
depend on it without a cycle.
"""

from __future__ import annotations

# --- data (§3.1) -------------------------------------------------------------------------------
OBJECTS = ("monkey", "penguin", "aeroplane")  # the three 3-D models, labels 0, 1, 2
CLASSES = (*OBJECTS, "none")  # label 3 is "none": background only
N_OBJECTS = len(OBJECTS)
NONE = N_OBJECTS
IMAGE_SIZE = 64
ROT_RANGE = 0.5  # rotations are uniform in [−0.5, 0.5] rad about each axis

# --- the triple-staged network (§2) ----------------------------------------------------------
PATCH = 10  # the comparator's patch side
THETAS = (0.2, 0.45, 0.7)  # the verdict thresholds of Table 1

# --- attacks (§3.2) ---------------------------------------------------------------------------
STEP = 1.0 / 255.0  # one FGSM step: one grey level
GOALS = {"fp": "false positive: object → another object", "fn": "false negative: object → none"}
GOAL_TITLES = {"fp": "False positives (Fig. 4): object → another object class",  # headings of tables and figures
               "fn": "False negatives (Fig. 6): object → none"}

# --- networks ---------------------------------------------------------------------------------
STAGES = ("direct", "direct-param", "estimator", "projector", "comparator")  # checkpoint files, in training order
AT_STAGES = ("direct-at", "estimator-at", "comparator-at")  # adversarially trained (the paper's future work)
NETWORKS = ("direct", "direct_param", "triple")  # the paper's networks: what a user can attack or inspect
AT_NETWORKS = ("direct_at", "triple_at")  # adversarially trained, attackable too where their checkpoints ship
NETWORK_LABELS = {"direct": "Direct CNN", "direct_param": "Direct CNN + rotation head", "triple": "Triple-staged",
                  "direct_at": "Direct CNN, adversarially trained",
                  "triple_at": "Triple-staged, adversarially trained stages"}

# Table 1 of the paper (error rates on 10,000 test images per class)
PAPER_TABLE1 = {"direct": 0.0001, "direct_param": 0.0001, "triple@0.2": 0.0134, "triple@0.45": 0.0057,
                "triple@0.7": 0.0309}


def is_triple(network: str) -> bool:
    """Whether ``network`` (or a result key like ``triple_at@0.7``) is triple-staged: a verdict with θ."""
    return network.partition("@")[0] in ("triple", "triple_at")


def network_key(network: str, theta: float | None = None) -> str:
    """The key used in results: ``direct``, ``direct_param``, ``triple@θ`` (``triple_at@θ``)."""
    return f"{network}@{theta:g}" if is_triple(network) and "@" not in network else network


def network_label(key: str) -> str:
    """What a user reads for a result key: ``triple@0.7`` → ``Triple-staged, θ = 0.7``."""
    base, _, theta = key.partition("@")
    label = NETWORK_LABELS.get(base, base.replace("_", " "))
    return f"{label}, θ = {theta}" if theta else label
