"""The GL renderer against analytic geometry and against the NumPy reference rasteriser."""
import cv2
import numpy as np
import pytest
import trimesh

from helpers import MESHES, shared_data
from novel_pose_ros.geometry.camera import project_points
from novel_pose_ros.geometry.se3 import look_at_T_cam_obj, make_T, rotation_from_axis_angle, transform_points
from novel_pose_ros.objects import load_object
from novel_pose_ros.render import AMBIENT_ONLY, SHADED, create_renderer
from novel_pose_ros.render.base import FALLBACK_GREY

K = np.array([[600.0, 0.0, 319.3], [0.0, 610.0, 241.7], [0.0, 0.0, 1.0]])
W, H = 640, 480
BOX_EXTENTS = np.array([0.12, 0.08, 0.05])


@pytest.fixture(scope="module")
def box_object(tmp_path_factory):
    path = tmp_path_factory.mktemp("box") / "box.ply"
    trimesh.creation.box(extents=BOX_EXTENTS).export(path)
    return load_object(path, object_id=1, units="m")


def _box_pose():
    return make_T(rotation_from_axis_angle(np.array([0.4, 1.0, 0.2]), 0.7), [0.01, -0.02, 0.5])


def analytic_box_depth(T_cam_obj: np.ndarray) -> np.ndarray:
    """Camera z of the first box surface hit by each pixel's ray (slab method), 0 = miss."""
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    rays_cam = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(K).T  # z = 1
    R, t = T_cam_obj[:3, :3], T_cam_obj[:3, 3]
    origin = -R.T @ t
    direction = rays_cam @ R  # R.T @ d for every ray
    half = BOX_EXTENTS / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - origin) / direction
        t2 = (half - origin) / direction
    t_near = np.minimum(t1, t2).max(axis=-1)
    t_far = np.maximum(t1, t2).min(axis=-1)
    hit = (t_near <= t_far) & (t_near > 0)
    return np.where(hit, t_near, 0.0)  # ray z component is 1, so the ray parameter is camera z


@pytest.mark.parametrize("backend", ["gl", "numpy"])
def test_matches_analytic_ray_box(backend, box_object, gl_renderer, numpy_renderer):
    renderer = gl_renderer if backend == "gl" else numpy_renderer
    T = _box_pose()
    result = renderer.render([(box_object, T)], K, W, H)
    expected = analytic_box_depth(T)
    mask_expected = expected > 0
    union = mask_expected | result.mask
    iou = (mask_expected & result.mask).sum() / union.sum()
    assert iou >= 0.995, f"mask IoU {iou:.5f}"
    both = mask_expected & result.mask
    assert both.sum() > 5000
    assert np.abs(result.depth_m[both] - expected[both]).max() < 1e-4
    assert np.all(result.depth_m[~result.mask] == 0)


def test_gl_matches_numpy_reference_on_bundled_objects(gl_renderer, numpy_renderer):
    objects = [load_object(MESHES / f, i, units=u) for i, (f, u) in
               enumerate([("mug.ply", "m"), ("toy_block.ply", "m"), ("cereal_box.obj", "m"), ("bracket.stl", "mm")])]
    R = rotation_from_axis_angle(np.array([1.0, 0.2, 0.1]), -2.0)
    instances = [(o, make_T(R, [x, 0.0, 0.5])) for o, x in zip(objects, [-0.2, -0.07, 0.05, 0.18])]
    _assert_same_render(gl_renderer.render(instances, K, W, H, SHADED), numpy_renderer.render(instances, K, W, H, SHADED))


@pytest.mark.needs_data
def test_gl_matches_numpy_reference_on_real_mesh(gl_renderer, numpy_renderer):
    obj = load_object(shared_data("bop_metric_oracle/models") / "obj_000005.ply", 5, units="mm")
    T = make_T(rotation_from_axis_angle(np.array([1.0, 0.3, 0.0]), 2.0), [0.02, -0.01, 0.6])
    _assert_same_render(gl_renderer.render([(obj, T)], K, W, H, SHADED), numpy_renderer.render([(obj, T)], K, W, H, SHADED))


def _assert_same_render(a, b):
    union = a.mask | b.mask
    assert (a.labels == b.labels)[union].mean() > 0.999
    both = a.mask & b.mask
    depth_close = np.abs(a.depth_m[both] - b.depth_m[both]) < 1e-5
    assert depth_close.mean() > 0.999  # exceptions: exact ties on silhouette edges
    assert np.abs(a.rgb[both].astype(int) - b.rgb[both]).mean() < 1.0


def test_nearer_object_occludes(box_object, gl_renderer):
    far = make_T(np.eye(3), [0.0, 0.0, 0.8])
    near = make_T(np.eye(3), [0.03, 0.0, 0.5])
    result = gl_renderer.render([(box_object, far), (box_object, near)], K, W, H)
    centre_near = project_points(K, near[:3, 3][None])[0].round().astype(int)
    assert result.labels[centre_near[1], centre_near[0]] == 2
    assert np.isclose(result.depth_m[centre_near[1], centre_near[0]], 0.5 - BOX_EXTENTS[2] / 2, atol=1e-5)
    assert set(np.unique(result.labels)) == {0, 1, 2}


def test_uv_texture_is_not_mirrored(gl_renderer):
    """Looking at the cereal box's front (−y) side, the image shows the FRONT atlas tile upright."""
    obj = load_object(MESHES / "cereal_box.obj", 3, units="m")
    T = look_at_T_cam_obj(np.array([0.0, -0.3, 0.0]))
    result = gl_renderer.render([(obj, T)], K, W, H)
    atlas = np.asarray(obj.mesh.visual.material.image.convert("RGB"))
    tile = atlas.shape[1] // 4
    front = atlas[tile:2 * tile, 0:tile]  # row 1, column 0 of the 4×3 atlas
    x, y, z = 0.03, 0.01, 0.045
    corners_obj = np.array([[-x, -y, z], [x, -y, z], [x, -y, -z], [-x, -y, -z]])  # top-left, clockwise
    corners_img = project_points(K, transform_points(T, corners_obj)).astype(np.float32)
    src = np.float32([[-0.5, -0.5], [tile - 0.5, -0.5], [tile - 0.5, tile - 0.5], [-0.5, tile - 0.5]])
    expected = cv2.warpPerspective(front, cv2.getPerspectiveTransform(src, corners_img), (W, H))
    inner = cv2.erode(result.mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    error = np.abs(result.rgb[inner].astype(int) - expected[inner]).mean()
    mirrored = cv2.warpPerspective(front[:, ::-1], cv2.getPerspectiveTransform(src, corners_img), (W, H))
    error_mirrored = np.abs(result.rgb[inner].astype(int) - mirrored[inner]).mean()
    assert error < 8 and error_mirrored > 3 * error


def test_geometry_only_mesh_is_flat_grey_under_ambient_and_shaded_under_headlight(gl_renderer):
    obj = load_object(MESHES / "bracket.stl", 4, units="mm", origin="center_bbox")
    T = make_T(rotation_from_axis_angle(np.array([1.0, 1.0, 0.0]), 1.0), [0.0, 0.0, 0.4])
    flat = gl_renderer.render([(obj, T)], K, W, H, AMBIENT_ONLY)
    assert np.abs(flat.rgb[flat.mask].astype(float) - FALLBACK_GREY * 255).max() <= 1.0
    shaded = gl_renderer.render([(obj, T)], K, W, H, SHADED)
    assert shaded.rgb[shaded.mask].std() > 5


def test_bad_arguments_are_rejected(box_object, gl_renderer):
    T = _box_pose()
    with pytest.raises(ValueError, match="focal"):
        gl_renderer.render([(box_object, T)], np.zeros((3, 3)), W, H)
    T_bad = T.copy()
    T_bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        gl_renderer.render([(box_object, T_bad)], K, W, H)
    with pytest.raises(ValueError, match="size"):
        gl_renderer.render([(box_object, T)], K, 0, H)


def test_factory_rejects_unknown_backend_and_builds_numpy():
    with pytest.raises(ValueError, match="backend"):
        create_renderer("vulkan")
    assert create_renderer("numpy").name == "numpy"


def test_gl_renderer_reports_gl_renderer_string(gl_renderer, caplog):
    assert gl_renderer.name.startswith("gl (") and gl_renderer.gl_renderer


def test_directional_light_matches_reference_and_lights_the_facing_side(box_object, gl_renderer, numpy_renderer):
    from novel_pose_ros.render import Lighting

    T = make_T(np.eye(3), [0.0, 0.0, 0.5])  # the box's −z face looks at the camera
    from_left = Lighting(ambient=0.2, headlight=0.0, directional=0.8, light_direction_cam=(-1.0, 0.0, -1.0))
    a = gl_renderer.render([(box_object, T)], K, W, H, from_left)
    b = numpy_renderer.render([(box_object, T)], K, W, H, from_left)
    _assert_same_render(a, b)
    # the face towards the camera (grey albedo) gets cos(45°) of the light: 0.7 · (0.2 + 0.8 · 0.707)
    centre = a.rgb[int(K[1, 2]), int(K[0, 2])].astype(float)
    np.testing.assert_allclose(centre / 255.0, FALLBACK_GREY * (0.2 + 0.8 * np.sqrt(0.5)), atol=2 / 255)
    with pytest.raises(ValueError, match="light_direction_cam"):
        Lighting(directional=1.0, light_direction_cam=(0.0, 0.0, 0.0))


def test_two_gl_renderers_in_one_process_each_draw_into_their_own_context(box_object, gl_renderer):
    """Each renderer makes its own context current (a second context must not capture the first's draws)."""
    reference = gl_renderer.render([(box_object, _box_pose())], K, W, H)
    other = create_renderer("gl")
    other_result = other.render([(box_object, make_T(np.eye(3), [0.05, 0.0, 0.4]))], K, 320, 240)
    again = gl_renderer.render([(box_object, _box_pose())], K, W, H)
    assert np.array_equal(again.depth_m, reference.depth_m) and np.array_equal(again.labels, reference.labels)
    assert other_result.mask.sum() > 1000
    other.release()
    assert np.array_equal(gl_renderer.render([(box_object, _box_pose())], K, W, H).labels, reference.labels)


def test_framebuffers_of_many_sizes_are_bounded(box_object):
    renderer = create_renderer("gl")
    for size in range(100, 180, 10):
        renderer.render([(box_object, _box_pose())], K, size, size)
    assert len(renderer._framebuffers) <= 4
    renderer.release()
