"""Camera models, crop transforms, SE(3)/rotations, icosphere viewpoints and PnP.

Conventions (docs/CONVENTIONS.md): metres and radians; OpenCV camera (x right,
y down, z forward) with pixel centres at integer coordinates; `T_a_b` maps
points of frame b into frame a (`p_a = T_a_b @ p_b`).
"""
