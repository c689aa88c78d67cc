"""The fast rasterizer against a slow reference, analytic areas, and determinism."""

import numpy as np
import pytest
import trimesh

import aimeye
from aimeye.meshes import euler_matrices
from aimeye.render import AMBIENT, CAMERA_DISTANCE, DIFFUSE, LIGHT, TAN_HALF_FOV, rasterize, render, resolve_mesh


def slow_reference(vertices, faces, albedo, rotation, size=16, ss=2, cull=True):
    """Per-sample point-in-triangle tests and a z-buffer, in plain numpy (no numba)."""
    res = size * ss
    m = euler_matrices(np.asarray([rotation]))[0].astype(np.float64)
    v = vertices.astype(np.float64) @ m.T
    w = 1.0 / (CAMERA_DISTANCE - v[:, 2])
    half = res / 2
    sx = half + half / TAN_HALF_FOV * v[:, 0] * w
    sy = half - half / TAN_HALF_FOV * v[:, 1] * w
    ys, xs = np.mgrid[0:res, 0:res] + 0.5
    zbuf = np.zeros((res, res))
    cbuf = np.zeros((res, res))
    for f, (a, b, c) in enumerate(faces):
        area = (sx[b] - sx[a]) * (sy[a] - sy[c]) - (sy[a] - sy[b]) * (sx[c] - sx[a])
        if area == 0 or (cull and area < 0):
            continue
        n = np.cross(v[b] - v[a], v[c] - v[a])
        lam = n @ LIGHT / np.linalg.norm(n)
        lam = max(-lam if area < 0 else lam, 0.0)
        shade = albedo[f] * (AMBIENT + DIFFUSE * lam)

        def edge(i, j):
            return (xs - sx[i]) * (sy[j] - sy[i]) - (ys - sy[i]) * (sx[j] - sx[i])

        e0, e1, e2 = edge(b, c), edge(c, a), edge(a, b)
        if area < 0:
            e0, e1, e2 = -e0, -e1, -e2
        inside = (e0 >= 0) & (e1 >= 0) & (e2 >= 0)
        z = (e0 * w[a] + e1 * w[b] + e2 * w[c]) / abs(area)
        hit = inside & (z > zbuf)
        zbuf[hit] = z[hit]
        cbuf[hit] = shade
    img = cbuf.reshape(size, ss, size, ss).mean((1, 3))
    alpha = (zbuf > 0).reshape(size, ss, size, ss).mean((1, 3))
    return img, alpha


@pytest.mark.parametrize("name", ["monkey", "penguin", "aeroplane"])
def test_matches_slow_reference(name):
    mesh = resolve_mesh(name)
    rots = np.array([[0, 0, 0], [0.3, -0.4, 0.2], [-0.5, 0.5, -0.5]])
    img, alpha = rasterize(mesh.vertices, mesh.faces, mesh.albedo, rots, size=16, ss=2, cull=mesh.closed)
    for k, r in enumerate(rots):
        ref_img, ref_alpha = slow_reference(mesh.vertices, mesh.faces, mesh.albedo, r, cull=mesh.closed)
        # samples exactly on shared edges may pick either face: allow a tiny share of differences
        assert np.abs(alpha[k] - ref_alpha).mean() < 2e-3
        assert np.abs(img[k] - ref_img).mean() < 2e-3


def projected_side(half_extent, depth):
    return 2 * half_extent / (CAMERA_DISTANCE - depth) / TAN_HALF_FOV * 32


def test_sphere_alpha_area_is_analytic():
    r = 0.8
    s = trimesh.creation.icosphere(subdivisions=5, radius=r)
    _, alpha = rasterize(s.vertices, s.faces, np.ones(len(s.faces)), np.zeros((1, 3)))
    radius_px = r / np.sqrt(CAMERA_DISTANCE**2 - r**2) / TAN_HALF_FOV * 32
    assert alpha.sum() == pytest.approx(np.pi * radius_px**2, rel=0.01)
    a = alpha[0]
    assert a.min() == 0.0 and a.max() == 1.0 and a[32, 32] == 1.0 and (a[:6, :6] == 0).all()
    # fully covered pixels: the disc shrunk by one pixel, at most the whole disc
    assert np.pi * (radius_px - 1) ** 2 <= (a == 1).sum() <= np.pi * radius_px**2
    # anti-aliasing: a rim about one pixel wide along the circumference has fractional alpha
    assert ((a > 0) & (a < 1)).sum() == pytest.approx(2 * np.pi * radius_px, rel=0.2)


def test_cube_alpha_area_is_analytic():
    b = trimesh.creation.box(extents=[0.9, 0.9, 0.9])
    _, alpha = rasterize(b.vertices, b.faces, np.ones(len(b.faces)), np.zeros((1, 3)))
    side = projected_side(0.45, 0.45)
    # sample centres on a 1/4-pixel grid: at most one sub-row/column per edge differs
    assert abs(alpha.sum() - side**2) <= side


def test_rotation_convention_moves_a_known_vertex():
    # a small cube at x=+0.6: rz=+90° (counter-clockwise about z) moves it to y=+0.6, i.e. the top half
    b = trimesh.creation.box(extents=[0.2, 0.2, 0.2])
    v = b.vertices + [0.6, 0, 0]
    _, a0 = rasterize(v, b.faces, np.ones(len(b.faces)), np.zeros((1, 3)))
    _, a1 = rasterize(v, b.faces, np.ones(len(b.faces)), np.array([[0, 0, np.pi / 2]]))
    ys, xs = np.nonzero(a0[0] > 0.5)
    assert xs.mean() > 40 and abs(ys.mean() - 31.5) < 1
    ys, xs = np.nonzero(a1[0] > 0.5)
    assert ys.mean() < 24 and abs(xs.mean() - 31.5) < 1
    # rx=+90° tips +y towards the camera (+z): a cube at y=+0.6 moves to the centre and grows
    _, a2 = rasterize(b.vertices + [0, 0.6, 0], b.faces, np.ones(len(b.faces)), np.array([[np.pi / 2, 0, 0]]))
    ys, xs = np.nonzero(a2[0] > 0.5)
    assert abs(ys.mean() - 31.5) < 1 and a2.sum() > a0.sum()


def test_culling_is_invisible_on_a_closed_mesh():
    s = trimesh.creation.icosphere(subdivisions=3)
    rot = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 3))
    a = rasterize(s.vertices * 0.9, s.faces, np.full(len(s.faces), 0.7), rot, cull=True)
    b = rasterize(s.vertices * 0.9, s.faces, np.full(len(s.faces), 0.7), rot, cull=False)
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)
    np.testing.assert_array_equal(a[1], b[1])


def test_lit_from_the_upper_left():
    s = trimesh.creation.icosphere(subdivisions=4, radius=0.8)
    img, _ = rasterize(s.vertices, s.faces, np.ones(len(s.faces)), np.zeros((1, 3)))
    assert img[0, 20:28, 20:28].mean() > img[0, 36:44, 36:44].mean()


def test_deterministic_and_batch_independent():
    rot = np.random.default_rng(1).uniform(-0.5, 0.5, (9, 3))
    a_img, a_alpha = render("penguin", rot)
    b_img, b_alpha = render("penguin", rot)
    c_img, _c_alpha = render(1, rot[4:5])
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_alpha, b_alpha)
    np.testing.assert_array_equal(a_img[4], c_img[0])
    assert a_img.dtype == np.float32 and a_img.shape == (9, 64, 64)
    assert 0 <= a_img.min() and a_img.max() <= 1 and 0 <= a_alpha.min() and a_alpha.max() <= 1


def test_image_is_over_black():
    img, alpha = render("monkey", np.zeros((1, 3)))
    assert np.all(img[alpha == 0] == 0)
    assert np.all(img <= alpha + 1e-6), "premultiplied: colour never exceeds coverage"


def test_bad_rotations_and_labels():
    with pytest.raises(ValueError):
        render("monkey", np.zeros((2, 2)))
    with pytest.raises(ValueError):
        render(3, np.zeros((1, 3)))
    with pytest.raises(aimeye.MeshError):
        render("giraffe", np.zeros((1, 3)))
