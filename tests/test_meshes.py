"""Tests for aimeye.meshes: built-in meshes, Euler convention, user mesh loading."""

import math

import numpy as np
import pytest
import trimesh

from aimeye import meshes
from aimeye.meshes import (
    BUILTIN,
    Mesh,
    MeshError,
    euler_matrices,
    euler_matrix,
    load_builtin,
    load_mesh_file,
    normalise,
    resolve_mesh,
)


def check_mesh(m: Mesh):
    assert m.vertices.dtype == np.float32 and m.vertices.ndim == 2
    assert m.vertices.shape[1] == 3
    assert np.isfinite(m.vertices).all()
    assert np.linalg.norm(m.vertices, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    assert m.faces.dtype == np.int32 and m.faces.shape[1] == 3
    assert m.faces.flags.c_contiguous
    assert m.faces.min() >= 0 and m.faces.max() < len(m.vertices)
    assert m.albedo.dtype == np.float32 and m.albedo.shape == (len(m.faces),)
    assert m.albedo.min() >= 0.0 and m.albedo.max() <= 1.0
    assert isinstance(m.closed, bool)


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_loads(name):
    m = load_builtin(name)
    assert m.name == name
    check_mesh(m)
    assert 100 < len(m.faces) <= 3000
    assert load_builtin(name) is m  # cached
    lo, hi = m.vertices.min(0), m.vertices.max(0)
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-5)


def test_builtin_order_and_resolve():
    assert BUILTIN == ("monkey", "penguin", "aeroplane")
    assert resolve_mesh(1) is load_builtin("penguin")
    assert resolve_mesh(np.int64(2)) is load_builtin("aeroplane")
    m = load_builtin("monkey")
    assert resolve_mesh(m) is m and resolve_mesh("monkey") is m
    for bad in (3, -1, True, 1.0):
        with pytest.raises(MeshError):
            resolve_mesh(bad)


def test_unknown_builtin():
    with pytest.raises(MeshError, match="monkey, penguin, aeroplane"):
        load_builtin("giraffe")


def test_builtin_arrays_read_only():
    m = load_builtin("monkey")
    with pytest.raises(ValueError):
        m.vertices[0, 0] = 5.0


def test_penguin_albedo_levels():
    a = load_builtin("penguin").albedo
    assert len(np.unique(a)) >= 4
    assert (a < 0.2).any() and (a > 0.9).any()
    m = load_builtin("penguin")
    assert m.closed
    tm = trimesh.Trimesh(m.vertices, m.faces, process=False)
    assert tm.is_watertight and tm.is_winding_consistent and tm.volume > 0


def test_file_object(tmp_path):
    path = tmp_path / "cube.ply"
    trimesh.creation.box().export(path)
    with path.open("rb") as fh:
        m = load_mesh_file(fh)
    assert m.name == "cube.ply" and len(m.faces) == 12


def test_monkey_faces_camera():
    # Suzanne's ears (|x| large) sit behind her face, which is on +z; head on +y.
    v = load_builtin("monkey").vertices
    ears = v[np.abs(v[:, 0]) > 0.8]
    assert len(ears) > 10 and ears[:, 2].mean() < -0.2
    assert v[:, 1].max() > 0.5


def test_euler_single_axes():
    np.testing.assert_allclose(
        euler_matrix(0, 0, math.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12
    )
    np.testing.assert_allclose(
        euler_matrix(math.pi / 2, 0, 0) @ [0, 1, 0], [0, 0, 1], atol=1e-12
    )
    np.testing.assert_allclose(
        euler_matrix(0, math.pi / 2, 0) @ [0, 0, 1], [1, 0, 0], atol=1e-12
    )


def test_euler_order_zxy():
    # z first: (1,0,0) -> (0,1,0); then x: (0,1,0) -> (0,0,1).
    r = euler_matrix(math.pi / 2, 0, math.pi / 2)
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 0, 1], atol=1e-12)
    rx, ry, rz = 0.3, -0.4, 0.2
    cx, sx, cy, sy, cz, sz = (f(a) for a in (rx, ry, rz) for f in (math.cos, math.sin))
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    np.testing.assert_allclose(euler_matrix(rx, ry, rz), my @ mx @ mz, atol=1e-12)


def test_euler_matches_blender():
    # Blender 3.4.1, rotation_mode='ZXY', rotation_euler=r -> matrix_world[:3, :3].
    r = (1.0332655545751441, 0.7738632088209076, -0.238285257507465)
    blender = [
        [0.5533044934272766, 0.7521951198577881, 0.3578501045703888],
        [-0.1208546832203865, 0.49754905700683594, -0.8589755892753601],
        [-0.8241652250289917, 0.4320271611213684, 0.3662024140357971],
    ]
    np.testing.assert_allclose(euler_matrix(*r), blender, atol=1e-6)


def test_euler_matrices_vectorised():
    rot = np.random.default_rng(0).uniform(-math.pi, math.pi, (50, 3))
    ms = euler_matrices(rot)
    assert ms.shape == (50, 3, 3) and ms.dtype == np.float32
    for r, m in zip(rot, ms, strict=True):
        np.testing.assert_allclose(m, euler_matrix(*r), atol=1e-6)
    np.testing.assert_allclose(
        ms @ ms.transpose(0, 2, 1), np.broadcast_to(np.eye(3), ms.shape), atol=1e-5
    )
    np.testing.assert_allclose(np.linalg.det(ms), 1.0, atol=1e-5)
    assert euler_matrix(0.1, 0.2, 0.3).dtype == np.float64


def test_normalise():
    v = normalise(np.array([[0, 0, 0], [2, 4, 6], [2, 0, 0]], dtype=float))
    np.testing.assert_allclose((v.min(0) + v.max(0)) / 2, 0.0, atol=1e-12)
    assert np.linalg.norm(v, axis=1).max() == pytest.approx(1.0)
    with pytest.raises(MeshError):
        normalise(np.ones((4, 3)))


@pytest.mark.parametrize("file_type", ["stl", "ply", "obj"])
def test_round_trip_box(file_type):
    box = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    data = box.export(file_type=file_type)
    data = data.encode() if isinstance(data, str) else data
    m = load_mesh_file(data, file_type=file_type)
    check_mesh(m)
    assert len(m.faces) == 12 and len(m.vertices) == 8
    assert m.closed
    np.testing.assert_allclose(m.albedo, meshes.USER_ALBEDO)
    expected = np.abs(normalise(box.vertices)).max(0)
    np.testing.assert_allclose(np.abs(m.vertices).max(0), expected, atol=1e-6)


def test_load_path_and_rotation(tmp_path):
    path = tmp_path / "Box.STL"
    trimesh.creation.box(extents=(2.0, 1.0, 0.5)).export(path)
    m = load_mesh_file(path)
    assert m.name == "Box.STL"
    r = load_mesh_file(str(path), name="turned", rotation=(0.0, 0.0, math.pi / 2))
    assert r.name == "turned"
    np.testing.assert_allclose(
        np.abs(r.vertices).max(0), np.abs(m.vertices).max(0)[[1, 0, 2]], atol=1e-6
    )


def test_inverted_box_is_rewound():
    box = trimesh.creation.box()
    box.invert()
    m = load_mesh_file(box.export(file_type="ply"), file_type="ply")
    assert m.closed
    tri = m.vertices[m.faces].astype(np.float64)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (np.einsum("ij,ij->i", normals, tri.mean(1)) > 0).all()  # outward


def test_open_mesh_not_closed():
    box = trimesh.creation.box()
    box.update_faces(np.arange(10))
    m = load_mesh_file(box.export(file_type="obj").encode(), file_type="obj")
    assert not m.closed and len(m.faces) == 10


def junk(seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, 300, dtype=np.uint8).tobytes()


BAD_BYTES = {
    "empty": (b"", "obj", "empty"),
    "garbage stl": (junk(1), "stl", ""),
    "garbage ply": (junk(2), "ply", ""),
    "garbage glb": (junk(3), "glb", ""),
    "nonsense obj": (b"hello world\nthis is not a mesh\n", "obj", ""),
    "vertices only": (b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", "obj", "no faces"),
    "nan vertex": (b"v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n", "obj", "NaN"),
    "degenerate": (b"v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n", "obj", ""),
    "unsupported": (b"solid x\nendsolid x\n", "fbx", "unsupported"),
    "no type": (b"v 0 0 0\n", None, "file type"),
}


@pytest.mark.parametrize("case", BAD_BYTES)
def test_bad_bytes_raise_mesh_error(case):
    data, file_type, fragment = BAD_BYTES[case]
    with pytest.raises(MeshError, match=fragment or None) as info:
        load_mesh_file(data, name="x", file_type=file_type)
    assert type(info.value) is MeshError
    assert str(info.value).startswith(("could not read mesh 'x'", "could not"))


def test_bad_paths_raise_mesh_error(tmp_path):
    cases = {
        tmp_path / "missing.obj": "not found",
        tmp_path / "empty.stl": "empty",
        tmp_path / "junk.obj": "",
        tmp_path / "notes.txt": "unsupported",
        tmp_path: "not a regular file",
    }
    (tmp_path / "empty.stl").write_bytes(b"")
    (tmp_path / "junk.obj").write_text("this is not\nan obj file at all\n")
    (tmp_path / "notes.txt").write_text("v 0 0 0\n")
    for path, fragment in cases.items():
        with pytest.raises(MeshError, match=fragment or None) as info:
            load_mesh_file(path)
        assert type(info.value) is MeshError, path
        assert path.name in str(info.value)


def test_bad_argument_type():
    with pytest.raises(MeshError):
        load_mesh_file(12345)


def test_glb_scene_is_concatenated():
    scene = trimesh.Scene(
        [
            trimesh.creation.box(),
            trimesh.creation.icosphere().apply_translation([3, 0, 0]),
        ]
    )
    m = load_mesh_file(scene.export(file_type="glb"), name="two", file_type="glb")
    check_mesh(m)
    assert len(m.faces) == 12 + 1280
