#!/usr/bin/env python3
"""Generate the bundled demo/test meshes in meshes/ (our own geometry, no third-party assets).

    python tools/make_bundled_meshes.py [--out meshes]

mug.ply          metres, vertex colours, ~20k faces (the template benchmark object)
toy_block.ply    metres, face colours (a different colour per side)
cereal_box.obj   metres, UV texture (cereal_box.png) via cereal_box.mtl
bracket.stl      millimetres, geometry only (renders shaded grey)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import trimesh


def mug() -> trimesh.Trimesh:
    # Profile in (radius, height), revolved about z: outer wall, rim, inner wall, inner bottom.
    outer = [(0.0, 0.0)] + [(0.040 + 0.002 * np.sin(np.pi * h / 0.1), h) for h in np.linspace(0.0, 0.1, 30)]
    inner = [(0.036 + 0.002 * np.sin(np.pi * h / 0.1), h) for h in np.linspace(0.1, 0.008, 30)] + [(0.0, 0.008)]
    profile = np.array(outer + inner)
    body = trimesh.creation.revolve(profile, sections=160)
    handle = trimesh.creation.torus(major_radius=0.028, minor_radius=0.007, major_sections=48, minor_sections=24)
    handle.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    handle.apply_translation([0.050, 0.0, 0.052])
    colors_body = np.tile([200, 40, 35, 255], (len(body.vertices), 1))
    h = body.vertices[:, 2]
    r = np.linalg.norm(body.vertices[:, :2], axis=1)
    colors_body[(h > 0.055) & (h < 0.075) & (r > 0.039)] = [240, 240, 225, 255]  # white band
    colors_body[(r < 0.0385) & (h > 0.0079)] = [225, 215, 200, 255]  # inside
    colors_body[(r > 0.039) & (np.arctan2(body.vertices[:, 1], body.vertices[:, 0]) > 2.4) & (h > 0.02) & (h < 0.045)] = [30, 60, 170, 255]  # logo patch
    colors_handle = np.tile([30, 60, 170, 255], (len(handle.vertices), 1))
    mesh = trimesh.util.concatenate([body, handle])
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.vstack([colors_body, colors_handle]).astype(np.uint8))
    return mesh


def toy_block() -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=[0.07, 0.045, 0.03])
    mesh = mesh.subdivide().subdivide()
    palette = {(0, 1): [220, 50, 50], (0, -1): [50, 170, 60], (1, 1): [40, 90, 210],
               (1, -1): [240, 200, 40], (2, 1): [230, 120, 30], (2, -1): [150, 60, 180]}
    normals = mesh.face_normals
    axis = np.argmax(np.abs(normals), axis=1)
    sign = np.sign(normals[np.arange(len(normals)), axis]).astype(int)
    colors = np.array([palette[(a, s)] + [255] for a, s in zip(axis, sign)], dtype=np.uint8)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=colors)
    return mesh


def cereal_box_texture(size: int = 512) -> np.ndarray:
    """A 4×3 atlas: front, back, sides, top, bottom in distinct designs (RGB)."""
    tile = size // 4
    atlas = np.zeros((3 * tile, 4 * tile, 3), dtype=np.uint8)
    designs = {
        (1, 0): ((250, 210, 40), "FRONT"), (1, 1): ((200, 60, 40), "LEFT"), (1, 2): ((60, 120, 200), "BACK"),
        (1, 3): ((60, 170, 80), "RIGHT"), (0, 1): ((240, 240, 240), "TOP"), (2, 1): ((90, 90, 90), "BOTTOM"),
    }
    for (row, col), (color, label) in designs.items():
        y, x = row * tile, col * tile
        atlas[y:y + tile, x:x + tile] = color
        for k in range(0, tile, 16):  # stripes give texture for matching
            cv2.line(atlas, (x, y + k), (x + k, y), tuple(int(255 - c) for c in color), 2)
        cv2.putText(atlas, label, (x + 8, y + tile // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (10, 10, 10), 2, cv2.LINE_AA)
        cv2.circle(atlas, (x + tile // 2, y + 3 * tile // 4), tile // 8, (255, 255, 255), -1)
    return atlas


def cereal_box() -> tuple[trimesh.Trimesh, np.ndarray]:
    sx, sy, sz = 0.06, 0.02, 0.09  # width, depth, height
    atlas = cereal_box_texture()
    H, W = atlas.shape[:2]
    tile = W // 4
    # Each side: 4 corners (object frame) and its atlas tile (row, col); corners ordered
    # bottom-left, bottom-right, top-right, top-left as seen from outside.
    x, y, z = sx / 2, sy / 2, sz / 2
    sides = [
        ([(-x, -y, -z), (x, -y, -z), (x, -y, z), (-x, -y, z)], (1, 0)),  # front (−y)
        ([(x, -y, -z), (x, y, -z), (x, y, z), (x, -y, z)], (1, 3)),      # right (+x)
        ([(x, y, -z), (-x, y, -z), (-x, y, z), (x, y, z)], (1, 2)),      # back (+y)
        ([(-x, y, -z), (-x, -y, -z), (-x, -y, z), (-x, y, z)], (1, 1)),  # left (−x)
        ([(-x, -y, z), (x, -y, z), (x, y, z), (-x, y, z)], (0, 1)),      # top (+z)
        ([(-x, y, -z), (x, y, -z), (x, -y, -z), (-x, -y, -z)], (2, 1)),  # bottom (−z)
    ]
    vertices, uvs, faces = [], [], []
    for corners, (row, col) in sides:
        base = len(vertices)
        u0, u1 = col * tile / W, (col + 1) * tile / W
        v_top, v_bottom = 1 - row * tile / H, 1 - (row + 1) * tile / H  # UV v = 0 at the image bottom
        vertices += corners
        uvs += [(u0, v_bottom), (u1, v_bottom), (u1, v_top), (u0, v_top)]
        faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    from PIL import Image

    material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(atlas), name="cereal_box")
    mesh = trimesh.Trimesh(vertices=np.array(vertices), faces=np.array(faces), process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=np.array(uvs), material=material)
    return mesh, atlas


def bracket_mm() -> trimesh.Trimesh:
    base = trimesh.creation.box(extents=[80.0, 40.0, 8.0])
    base.apply_translation([0, 0, 4.0])
    wall = trimesh.creation.box(extents=[8.0, 40.0, 50.0])
    wall.apply_translation([-36.0, 0, 25.0])
    boss = trimesh.creation.cylinder(radius=9.0, height=14.0, sections=48)
    boss.apply_translation([22.0, 0, 7.0])
    rib = trimesh.creation.box(extents=[30.0, 6.0, 6.0])
    rib.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 4, [0, 1, 0]))
    rib.apply_translation([-24.0, 14.0, 18.0])
    return trimesh.util.concatenate([base, wall, boss, rib])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "meshes")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    mug().export(out / "mug.ply")
    toy_block().export(out / "toy_block.ply")
    box, atlas = cereal_box()
    box.export(out / "cereal_box.obj", mtl_name="cereal_box.mtl")
    bracket_mm().export(out / "bracket.stl")
    for path in sorted(out.iterdir()):
        print(f"{path.name:20s} {path.stat().st_size / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
