"""Stage 0: the renderer. A batched, deterministic CPU rasterizer (numba).

It stands in for Blender Cycles of the paper (§3.1): a z-buffer, flat Lambert
shading with one fixed directional light plus ambient, per-face albedo, and
``ss``×``ss`` supersampled anti-aliasing. Each output is a 64×64 greyscale image
*over black* (that is, fg·α, the premultiplied colour the projector learns to
draw) and a continuous alpha (the covered fraction of each pixel), both float32
in [0, 1].

Camera: a pinhole on +z at distance ``CAMERA_DISTANCE`` looking down −z, x to
the right, y up, with ``tan(fov/2) = TAN_HALF_FOV``; a mesh normalised to the
unit sphere fits the frame under every rotation. Rotations follow the Euler
convention of :func:`aimeye.meshes.euler_matrices` (Blender's 'ZXY' mode,
R = Ry·Rx·Rz).
"""

from __future__ import annotations

import numba
import numpy as np

from .meshes import BUILTIN, Mesh, euler_matrices, load_builtin

SIZE = 64
CAMERA_DISTANCE = 3.0
TAN_HALF_FOV = 0.40
LIGHT = np.array([-0.35, 0.45, 1.0]) / np.linalg.norm([-0.35, 0.45, 1.0])
AMBIENT = 0.3
DIFFUSE = 0.7


@numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _raster_batch(verts, faces, albedo, mats, size, ss, dist, tan_half, light,
                  ambient, diffuse, cull, out_img, out_alpha):
    n_img = mats.shape[0]
    n_v = verts.shape[0]
    n_f = faces.shape[0]
    res = size * ss
    half = 0.5 * res
    scale = half / tan_half
    inv_ss2 = np.float32(1.0 / (ss * ss))
    for b in numba.prange(n_img):
        m = mats[b]
        sx = np.empty(n_v, np.float32)
        sy = np.empty(n_v, np.float32)
        iw = np.empty(n_v, np.float32)
        cx = np.empty(n_v, np.float32)
        cy = np.empty(n_v, np.float32)
        cz = np.empty(n_v, np.float32)
        for i in range(n_v):
            x = m[0, 0] * verts[i, 0] + m[0, 1] * verts[i, 1] + m[0, 2] * verts[i, 2]
            y = m[1, 0] * verts[i, 0] + m[1, 1] * verts[i, 1] + m[1, 2] * verts[i, 2]
            z = m[2, 0] * verts[i, 0] + m[2, 1] * verts[i, 1] + m[2, 2] * verts[i, 2]
            cx[i] = x
            cy[i] = y
            cz[i] = z
            w = 1.0 / (dist - z)
            iw[i] = w
            sx[i] = half + scale * x * w
            sy[i] = half - scale * y * w
        zbuf = np.zeros((res, res), np.float32)
        cbuf = np.zeros((res, res), np.float32)
        for f in range(n_f):
            i0 = faces[f, 0]
            i1 = faces[f, 1]
            i2 = faces[f, 2]
            x0 = sx[i0]
            y0 = sy[i0]
            x1 = sx[i1]
            y1 = sy[i1]
            x2 = sx[i2]
            y2 = sy[i2]
            # signed area in screen space (y points down): > 0 for faces wound
            # counter-clockwise as seen by the camera, i.e. front faces
            area = (x1 - x0) * (y0 - y2) - (y0 - y1) * (x2 - x0)
            if area == 0.0:
                continue
            if cull and area < 0.0:
                continue
            # flat Lambert shading with the camera-space face normal
            ux = cx[i1] - cx[i0]
            uy = cy[i1] - cy[i0]
            uz = cz[i1] - cz[i0]
            vx = cx[i2] - cx[i0]
            vy = cy[i2] - cy[i0]
            vz = cz[i2] - cz[i0]
            nx = uy * vz - uz * vy
            ny = uz * vx - ux * vz
            nz = ux * vy - uy * vx
            nn = np.sqrt(nx * nx + ny * ny + nz * nz)
            if nn == 0.0:
                continue
            lam = (nx * light[0] + ny * light[1] + nz * light[2]) / nn
            if area < 0.0:  # a back face of an open mesh: light its visible side
                lam = -lam
            lam = max(lam, 0.0)
            shade = albedo[f] * (ambient + diffuse * lam)
            if area < 0.0:  # make the edge functions positive inside
                x1, x2 = x2, x1
                y1, y2 = y2, y1
                i1, i2 = i2, i1
                area = -area
            xmin = max(int(np.floor(min(x0, min(x1, x2)))), 0)
            xmax = min(int(np.ceil(max(x0, max(x1, x2)))), res - 1)
            ymin = max(int(np.floor(min(y0, min(y1, y2)))), 0)
            ymax = min(int(np.ceil(max(y0, max(y1, y2)))), res - 1)
            if xmin > xmax or ymin > ymax:
                continue
            inv_area = 1.0 / area
            w0_0 = iw[i0] * inv_area
            w1_0 = iw[i1] * inv_area
            w2_0 = iw[i2] * inv_area
            # edge function e_k(p) is twice the area opposite vertex k
            a0 = y1 - y2
            b0 = x2 - x1
            a1 = y2 - y0
            b1 = x0 - x2
            a2 = y0 - y1
            b2 = x1 - x0
            # barycentric depth (1/w) is affine in screen space: z = z0 + dzx·x + dzy·y
            dzx = -(a0 * w0_0 + a1 * w1_0 + a2 * w2_0)
            px = xmin + 0.5
            for yy in range(ymin, ymax + 1):
                py = yy + 0.5
                e0 = -(a0 * (px - x1) + b0 * (py - y1))
                e1 = -(a1 * (px - x2) + b1 * (py - y2))
                e2 = -(a2 * (px - x0) + b2 * (py - y0))
                # the covered span of this row, solved from the three edge functions
                lo = xmin
                hi = xmax
                if a0 > 0.0:
                    hi = min(hi, xmin + int(np.floor(e0 / a0)))
                elif a0 < 0.0:
                    lo = max(lo, xmin + int(np.ceil(e0 / a0)))
                elif e0 < 0.0:
                    continue
                if a1 > 0.0:
                    hi = min(hi, xmin + int(np.floor(e1 / a1)))
                elif a1 < 0.0:
                    lo = max(lo, xmin + int(np.ceil(e1 / a1)))
                elif e1 < 0.0:
                    continue
                if a2 > 0.0:
                    hi = min(hi, xmin + int(np.floor(e2 / a2)))
                elif a2 < 0.0:
                    lo = max(lo, xmin + int(np.ceil(e2 / a2)))
                elif e2 < 0.0:
                    continue
                if lo > hi:
                    continue
                z = e0 * w0_0 + e1 * w1_0 + e2 * w2_0 + dzx * (lo - xmin)
                row_z = zbuf[yy]
                row_c = cbuf[yy]
                for xx in range(lo, hi + 1):
                    if z > row_z[xx]:
                        row_z[xx] = z
                        row_c[xx] = shade
                    z += dzx
        for oy in range(size):
            for ox in range(size):
                cov = 0
                acc = np.float32(0.0)
                for sy_ in range(oy * ss, oy * ss + ss):
                    for sx_ in range(ox * ss, ox * ss + ss):
                        if zbuf[sy_, sx_] > 0.0:
                            cov += 1
                            acc += cbuf[sy_, sx_]
                out_img[b, oy, ox] = acc * inv_ss2
                out_alpha[b, oy, ox] = cov * inv_ss2


def _read_only(a, dtype) -> np.ndarray:
    """A contiguous, read-only view: numba compiles one kernel per array writability, and the built-in
    meshes are read-only, so every mesh is passed read-only (one compiled kernel, not two)."""
    v = np.ascontiguousarray(a, dtype=dtype).view()
    v.flags.writeable = False
    return v


def rasterize(vertices, faces, albedo, rotations, *, size: int = SIZE, ss: int = 4,
              cull: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Render raw triangles under N rotations.

    vertices (V,3), faces (F,3) int, albedo (F,) in [0,1], rotations (N,3)
    radians. Returns ``(images, alphas)``, each (N,size,size) float32 in [0,1];
    images are over black (premultiplied). ``cull`` drops back faces (only for
    closed, consistently wound meshes).
    """
    verts, faces, albedo = (_read_only(vertices, np.float32), _read_only(faces, np.int32),
                            _read_only(albedo, np.float32))
    rot = np.asarray(rotations, dtype=np.float64)
    if rot.ndim == 1:
        rot = rot[None]
    if rot.ndim != 2 or rot.shape[1] != 3:
        raise ValueError(f"rotations must have shape (N,3), got {rot.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise ValueError("faces index outside the vertex array")
    mats = np.ascontiguousarray(euler_matrices(rot), dtype=np.float32)
    n = len(mats)
    images = np.zeros((n, size, size), np.float32)
    alphas = np.zeros((n, size, size), np.float32)
    if n and len(faces):
        _raster_batch(verts, faces, albedo, mats, size, ss, np.float32(CAMERA_DISTANCE),
                      np.float32(TAN_HALF_FOV), LIGHT.astype(np.float32),
                      np.float32(AMBIENT), np.float32(DIFFUSE), cull, images, alphas)
    np.clip(images, 0.0, 1.0, out=images)
    return images, alphas


def render_mesh(mesh: Mesh, rotations, *, ss: int = 4, size: int = SIZE):
    """Render a :class:`~aimeye.meshes.Mesh` under (N,3) Euler rotations."""
    return rasterize(mesh.vertices, mesh.faces, mesh.albedo, rotations, size=size, ss=ss,
                     cull=mesh.closed)


def resolve_mesh(cls_or_mesh) -> Mesh:
    """A built-in class by name or label (0–2), or a :class:`Mesh` as it is."""
    if isinstance(cls_or_mesh, Mesh):
        return cls_or_mesh
    if isinstance(cls_or_mesh, (int, np.integer)):
        if not 0 <= int(cls_or_mesh) < len(BUILTIN):
            raise ValueError(f"class label must be 0..{len(BUILTIN) - 1}, got {cls_or_mesh}")
        cls_or_mesh = BUILTIN[int(cls_or_mesh)]
    return load_builtin(cls_or_mesh)


def render(cls_or_mesh, rotations, *, ss: int = 4):
    """Public entry point: ``render("monkey" | 0 | Mesh, (N,3)) -> (images, alphas)``.

    Both outputs are (N,64,64) float32 in [0,1]; the image is the object over
    black and the alpha is its continuous coverage.
    """
    return render_mesh(resolve_mesh(cls_or_mesh), rotations, ss=ss)
