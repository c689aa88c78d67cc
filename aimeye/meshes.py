"""Triangle meshes for the three object classes, plus user mesh loading.

Built-in classes, in label order: ``monkey`` (0, Blender's Suzanne),
``penguin`` (1, a Tux-like penguin built here from ellipsoids) and
``aeroplane`` (2, ``airplane.ply`` from the pyvista wheel). Provenance of the
asset files is in ``aimeye/assets/meshes/README.md``.

Axes are right-handed: x to the right, y up, z towards the camera (the camera
sits on +z looking down -z). This is also Blender's world frame as seen by the
reference's camera at rotation 0.

Euler convention (Blender rotation mode ``'ZXY'``, as in the reference data
script): ``R = Ry(ry) @ Rx(rx) @ Rz(rz)``, i.e. rotate about z first, then x,
then y, all about the fixed world axes, acting on column vectors ``v' = R v``::

    Rx(a) = [[1, 0, 0], [0, c, -s], [0, s, c]]
    Ry(a) = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    Rz(a) = [[c, -s, 0], [s, c, 0], [0, 0, 1]]

Every mesh is normalised: centred on its bounding-box centre and scaled so that
the largest vertex norm is 1. Built-in meshes have a fixed canonical rotation
(``CANONICAL``) baked into their vertices before normalising, so that rotation
(0, 0, 0) shows a recognisable view. Mesh arrays are read-only.
"""

from __future__ import annotations

import functools
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .paper import OBJECTS

ASSET_DIR = Path(__file__).resolve().parent / "assets" / "meshes"
BUILTIN = OBJECTS  # the paper's three models, in label order
SUPPORTED_TYPES = ("obj", "ply", "stl", "glb", "gltf")
USER_ALBEDO = 0.8
MAX_FACES = 1_000_000

# Canonical (rx, ry, rz) in radians, same convention as euler_matrix. Suzanne's
# OBJ and the penguin already face +z with +y up. The aeroplane file has its nose
# on -y and its top on +z (a top view); rz=-60 deg swings the nose to the lower
# left, rx=-40 deg tilts it so the camera sees it from 50 deg above the wing
# plane (about 12 to 82 deg over all data rotations in [-0.5, 0.5]^3).
CANONICAL = {
    "monkey": (0.0, 0.0, 0.0),
    "penguin": (0.0, 0.0, 0.0),
    "aeroplane": (math.radians(-40.0), 0.0, math.radians(-60.0)),
}


class MeshError(ValueError):
    """A mesh could not be loaded; the message is meant for humans."""


@dataclass(frozen=True, eq=False)
class Mesh:
    """A normalised triangle mesh with one albedo per face."""

    name: str
    vertices: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) int32, C-contiguous
    albedo: np.ndarray  # (F,) float32 in [0, 1]
    closed: bool  # watertight, consistently wound outwards: back faces may be culled

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])


# ---------------------------------------------------------------- rotations


def euler_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """(3, 3) float64 rotation ``Ry(ry) @ Rx(rx) @ Rz(rz)`` (Blender 'ZXY')."""
    rotation = np.array([[rx, ry, rz]], dtype=np.float64)
    return euler_matrices(rotation, dtype=np.float64)[0]


def euler_matrices(rotations, dtype=np.float32) -> np.ndarray:
    """Vectorised :func:`euler_matrix`: (N, 3) radians (rx, ry, rz) -> (N, 3, 3)."""
    r = np.asarray(rotations, dtype=np.float64).reshape(-1, 3)
    cx, cy, cz = np.cos(r).T
    sx, sy, sz = np.sin(r).T
    m = np.empty((r.shape[0], 3, 3), dtype=np.float64)
    # Ry @ Rx @ Rz written out.
    m[:, 0, 0] = cy * cz + sy * sx * sz
    m[:, 0, 1] = -cy * sz + sy * sx * cz
    m[:, 0, 2] = sy * cx
    m[:, 1, 0] = cx * sz
    m[:, 1, 1] = cx * cz
    m[:, 1, 2] = -sx
    m[:, 2, 0] = -sy * cz + cy * sx * sz
    m[:, 2, 1] = sy * sz + cy * sx * cz
    m[:, 2, 2] = cy * cx
    return m.astype(dtype, copy=False)


def normalise(vertices) -> np.ndarray:
    """Centre on the bounding-box centre and scale so the max vertex norm is 1."""
    v = np.asarray(vertices, dtype=np.float64)
    v = v - (v.min(axis=0) + v.max(axis=0)) / 2.0
    scale = float(np.sqrt((v * v).sum(axis=1)).max()) if len(v) else 0.0
    if not np.isfinite(scale) or scale <= 0.0:
        raise MeshError("mesh is degenerate: all vertices coincide")
    return v / scale


# ---------------------------------------------------------------- construction


def _make_mesh(name, vertices, faces, albedo, closed, rotation=None) -> Mesh:
    v = np.asarray(vertices, dtype=np.float64)
    if rotation is not None:
        v = v @ euler_matrix(*rotation).T
    v = np.ascontiguousarray(normalise(v), dtype=np.float32)
    f = np.ascontiguousarray(faces, dtype=np.int32)
    a = np.ascontiguousarray(np.clip(albedo, 0.0, 1.0), dtype=np.float32)
    for arr in (v, f, a):
        arr.setflags(write=False)
    return Mesh(name=name, vertices=v, faces=f, albedo=a, closed=bool(closed))


def _is_closed(tm) -> bool:
    """Watertight and consistently wound; flips inward-facing meshes in place."""
    if not (tm.is_watertight and tm.is_winding_consistent):
        return False
    if tm.volume < 0:
        tm.invert()
    return True


def _ellipsoid(radii, centre, subdivisions=2, rot_z=0.0):
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=subdivisions)
    v = s.vertices * np.asarray(radii, dtype=np.float64)
    if rot_z:
        v = v @ euler_matrix(0.0, 0.0, rot_z).T
    return v + np.asarray(centre, dtype=np.float64), np.asarray(s.faces)


# (radii, centre, albedo, subdivisions, rotation about z) per part; y up, belly +z.
_DARK, _WHITE, _PUPIL, _BEAK, _FEET = 0.12, 0.95, 0.05, 0.72, 0.65
_PENGUIN_PARTS = (
    ((0.62, 0.85, 0.52), (0.0, -0.15, 0.0), _DARK, 2, 0.0),  # body
    ((0.47, 0.66, 0.40), (0.0, -0.26, 0.16), _WHITE, 2, 0.0),  # belly
    ((0.42, 0.40, 0.38), (0.0, 0.78, 0.0), _DARK, 2, 0.0),  # head
    ((0.11, 0.15, 0.06), (-0.14, 0.86, 0.33), _WHITE, 1, 0.0),  # eye whites
    ((0.11, 0.15, 0.06), (0.14, 0.86, 0.33), _WHITE, 1, 0.0),
    ((0.05, 0.07, 0.03), (-0.11, 0.84, 0.385), _PUPIL, 1, 0.0),  # pupils
    ((0.05, 0.07, 0.03), (0.11, 0.84, 0.385), _PUPIL, 1, 0.0),
    ((0.21, 0.11, 0.2), (0.0, 0.62, 0.38), _BEAK, 2, 0.0),  # beak
    ((0.12, 0.45, 0.22), (-0.64, -0.12, 0.0), _DARK, 2, -0.45),  # flippers
    ((0.12, 0.45, 0.22), (0.64, -0.12, 0.0), _DARK, 2, 0.45),
    ((0.22, 0.08, 0.32), (-0.26, -0.98, 0.22), _FEET, 2, 0.15),  # feet
    ((0.22, 0.08, 0.32), (0.26, -0.98, 0.22), _FEET, 2, -0.15),
)


def _penguin():
    vs, fs, albedo, offset = [], [], [], 0
    for radii, centre, alb, subdiv, rot_z in _PENGUIN_PARTS:
        v, f = _ellipsoid(radii, centre, subdiv, rot_z)
        vs.append(v)
        fs.append(f + offset)
        albedo.append(np.full(len(f), alb))
        offset += len(v)
    return np.concatenate(vs), np.concatenate(fs), np.concatenate(albedo), True


def _asset(filename):
    import trimesh

    tm = trimesh.load(ASSET_DIR / filename, force="mesh", process=True)
    closed = _is_closed(tm)
    return tm.vertices, tm.faces, np.full(len(tm.faces), USER_ALBEDO), closed


_BUILDERS = {
    "monkey": lambda: _asset("suzanne.obj"),
    "penguin": _penguin,
    "aeroplane": lambda: _asset("airplane.ply"),
}


@functools.cache
def load_builtin(name: str) -> Mesh:
    """One of :data:`BUILTIN`, with its canonical pose applied (cached)."""
    if name not in BUILTIN:
        raise MeshError(
            f"unknown built-in mesh {name!r}; valid names: {', '.join(BUILTIN)}"
        )
    vertices, faces, albedo, closed = _BUILDERS[name]()
    return _make_mesh(name, vertices, faces, albedo, closed, CANONICAL[name])


def resolve_mesh(mesh_or_class) -> Mesh:
    """A :class:`Mesh`, a built-in name or a class label (0, 1, 2) -> Mesh."""
    if isinstance(mesh_or_class, Mesh):
        return mesh_or_class
    if isinstance(mesh_or_class, str):
        return load_builtin(mesh_or_class)
    is_label = isinstance(mesh_or_class, (int, np.integer)) and not isinstance(
        mesh_or_class, bool
    )
    if is_label and 0 <= int(mesh_or_class) < len(BUILTIN):
        return load_builtin(BUILTIN[int(mesh_or_class)])
    raise MeshError(
        f"expected a Mesh, one of {', '.join(BUILTIN)} or a label 0-{len(BUILTIN) - 1}, "
        f"got {mesh_or_class!r}"
    )


# ---------------------------------------------------------------- user meshes


def _read_source(path_or_bytes, name, file_type):
    """Return (data bytes, display name, lower-case file type, folder or None)."""
    folder = None
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        name = name or (f"upload.{file_type}" if file_type else "upload")
    elif hasattr(path_or_bytes, "read"):
        data = path_or_bytes.read()
        data = data.encode() if isinstance(data, str) else bytes(data)
        name = name or Path(str(getattr(path_or_bytes, "name", "") or "upload")).name
        file_type = file_type or Path(name).suffix
    elif isinstance(path_or_bytes, (str, os.PathLike)):
        path = Path(path_or_bytes)
        name = name or path.name
        folder = path.parent
        file_type = file_type or path.suffix
        if not path.exists():
            raise MeshError(f"could not read mesh {name!r}: file not found ({path})")
        if not path.is_file():
            raise MeshError(
                f"could not read mesh {name!r}: not a regular file ({path})"
            )
        try:
            data = path.read_bytes()
        except OSError as e:
            raise MeshError(
                f"could not read mesh {name!r}: {e.strerror or e}"
            ) from None
    else:
        raise MeshError(f"cannot load a mesh from a {type(path_or_bytes).__name__}")
    file_type = (file_type or "").lower().lstrip(".")
    if not file_type:
        raise MeshError(
            f"could not read mesh {name!r}: unknown file type "
            f"(give one of {', '.join(SUPPORTED_TYPES)})"
        )
    if file_type not in SUPPORTED_TYPES:
        raise MeshError(
            f"could not read mesh {name!r}: unsupported file type '.{file_type}' "
            f"(supported: {', '.join(SUPPORTED_TYPES)})"
        )
    if not data.strip():
        raise MeshError(f"could not read mesh {name!r}: file is empty")
    return data, str(name), file_type, folder


def _parse(data: bytes, name: str, file_type: str, folder: Path | None):
    import trimesh

    try:
        # The resolver lets a .gltf on disk find its .bin buffers and textures.
        resolver = trimesh.resolvers.FilePathResolver(folder) if folder else None
        tm = trimesh.load(
            io.BytesIO(data),
            file_type=file_type,
            resolver=resolver,
            force="mesh",
            process=False,
        )
    except Exception as e:  # noqa: BLE001 - trimesh raises many types on bad input
        reason = (
            str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        )
        if file_type == "gltf":
            reason += (
                "; a .gltf with separate .bin buffers needs them alongside, try .glb"
            )
        raise MeshError(
            f"could not read mesh {name!r}: not a valid {file_type.upper()} file ({reason})"
        ) from None
    if not isinstance(tm, trimesh.Trimesh):
        raise MeshError(
            f"could not read mesh {name!r}: the file contains no triangle mesh"
        )
    return tm


def load_mesh_file(
    path_or_bytes,
    name: str | None = None,
    file_type: str | None = None,
    rotation: tuple[float, float, float] | None = None,
) -> Mesh:
    """Load an OBJ/PLY/STL/GLB/GLTF mesh from a path, raw bytes or a file object.

    ``file_type`` (e.g. ``"obj"``) is required for raw bytes and overrides the
    path's extension. Scenes are concatenated into one mesh. Every face gets
    albedo ``USER_ALBEDO``; ``rotation`` (rx, ry, rz) is applied before
    normalising (identity by default). Any failure raises :class:`MeshError`.
    """
    data, name, file_type, folder = _read_source(path_or_bytes, name, file_type)
    tm = _parse(data, name, file_type, folder)
    try:
        vertices = np.asarray(tm.vertices, dtype=np.float64).reshape(-1, 3)
        faces = np.asarray(tm.faces, dtype=np.int64).reshape(-1, 3)
    except (TypeError, ValueError) as e:
        raise MeshError(
            f"could not read mesh {name!r}: malformed geometry ({e})"
        ) from None
    if len(faces) == 0:
        raise MeshError(f"could not read mesh {name!r}: the file contains no faces")
    if len(faces) > MAX_FACES:
        raise MeshError(
            f"could not read mesh {name!r}: too many faces ({len(faces):,} > {MAX_FACES:,})"
        )
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError(
            f"could not read mesh {name!r}: faces refer to missing vertices"
        )
    if not np.isfinite(vertices).all():
        raise MeshError(
            f"could not read mesh {name!r}: vertices contain NaN or infinity"
        )
    try:
        tm.merge_vertices()
        tm.update_faces(tm.nondegenerate_faces())
        tm.remove_unreferenced_vertices()
        closed = _is_closed(tm)
    except Exception as e:  # noqa: BLE001 - never leak a trimesh error
        raise MeshError(f"could not read mesh {name!r}: {e}") from None
    if len(tm.faces) == 0:
        raise MeshError(f"could not read mesh {name!r}: all faces are degenerate")
    albedo = np.full(len(tm.faces), USER_ALBEDO)
    try:
        return _make_mesh(name, tm.vertices, tm.faces, albedo, closed, rotation)
    except MeshError as e:
        raise MeshError(f"could not read mesh {name!r}: {e}") from None
