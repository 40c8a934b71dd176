"""Generate a synthetic BOP dataset: models, scenes (rgb, depth, masks, GT, GT info), targets, detections.

Reproducible: scene s draws everything from `np.random.default_rng([seed, s])`, and the
files hold no time stamps, so the same seed and settings give identical files.

Consistency: the scenes are rendered from the models as written to `models/` and read
back through `ObjectLibrary.from_bop_models` (what `BopDataset.object_library()`
returns), with every pose rounded through its scene_gt.json representation first; so
rendering the dataset's GT with its own models reproduces its depth and masks exactly
(depth up to the uint16 quantisation, half of depth_scale_mm).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from novel_pose_ros.bop.dataset import Target, as_stored_in_scene_gt, write_targets
from novel_pose_ros.bop.detections import BopDetection, detection_entry, write_detections_json
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render import Renderer, create_renderer
from novel_pose_ros.synth.backgrounds import procedural_texture, random_background, support_plane
from novel_pose_ros.synth.depth_noise import apply_depth_noise
from novel_pose_ros.synth.lighting import degrade_rgb, random_lighting
from novel_pose_ros.synth.rendering import gt_info_entry, render_scene_image
from novel_pose_ros.synth.scene_sampling import StablePoses, sample_camera, sample_intrinsics, sample_layout
from novel_pose_ros.synth.settings import SynthSettings
from novel_pose_ros.synth.writer import SceneWriter, depth_to_uint16, write_models

TARGETS_FILE = "test_targets_bop19.json"
DETECTIONS_FILE = "detections_gt.json"
PLANE_TEXTURE_PX = 256


@dataclass(frozen=True)
class SynthSummary:
    """What generate_dataset wrote. mean_visib_fract averages instances with pixels in the image."""

    out_dir: Path
    scenes: int
    images: int
    instances: int
    visible_instances: int
    targets: int
    detections: int
    mean_visib_fract: float
    seconds: float
    renderer: str


def _prepare_output(out_dir: Path, split: str, overwrite: bool) -> None:
    generated = [out_dir / "models", out_dir / split, out_dir / TARGETS_FILE, out_dir / DETECTIONS_FILE]
    existing = [p for p in generated if p.exists()]
    if existing and not overwrite:
        raise ValueError(f"output {out_dir} already holds a dataset ({existing[0].name}); choose another folder or overwrite")
    for path in existing:  # only what this generator writes, never the rest of the folder
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def generate_dataset(library: ObjectLibrary, out_dir: str | Path, scenes: int, images_per_scene: int, seed: int,
                     settings: SynthSettings | None = None, renderer: Renderer | None = None,
                     show_progress: bool = True, overwrite: bool = False) -> SynthSummary:
    """Write a BOP dataset of `scenes` × `images_per_scene` images of `library`'s objects into out_dir.

    Object ids are the library's. Raises ValueError for bad arguments or an out_dir that
    already holds a generated dataset (unless overwrite, which replaces only those files).
    """
    start = time.perf_counter()
    settings = settings or SynthSettings()
    if int(scenes) < 1 or int(images_per_scene) < 1:
        raise ValueError(f"need at least one scene and one image per scene, got {scenes} × {images_per_scene}")
    if len(library) == 0:
        raise ValueError("the object library is empty")
    if int(seed) < 0:
        raise ValueError(f"seed must be ≥ 0, got {seed}")
    out_dir = Path(out_dir).expanduser().resolve()
    _prepare_output(out_dir, settings.split, overwrite)
    renderer = renderer or create_renderer("auto")
    write_models(library, out_dir / "models")
    models = ObjectLibrary.from_bop_models(out_dir / "models")  # render what the dataset holds
    objects = sorted(models, key=lambda o: o.id)
    stable = StablePoses()
    targets: list[Target] = []
    detections: list[dict] = []
    visib_fracts: list[float] = []
    instances = 0
    with tqdm(total=int(scenes) * int(images_per_scene), desc="synth", unit="image", disable=not show_progress) as bar:
        for scene_id in range(int(scenes)):
            rng = np.random.default_rng([int(seed), scene_id])
            count = int(rng.integers(settings.objects_per_scene[0], settings.objects_per_scene[1] + 1))
            layout = sample_layout([objects[i] for i in rng.integers(len(objects), size=count)], rng, settings, stable)
            K = sample_intrinsics(rng, settings)
            plane = support_plane(procedural_texture(rng, PLANE_TEXTURE_PX), rng.uniform(*settings.plane_half_size_m),
                                  rng.uniform(*settings.plane_texture_tile_m))
            writer = SceneWriter(out_dir / settings.split / f"{scene_id:06d}", settings.depth_scale_mm)
            for im_id in range(int(images_per_scene)):
                T_cam_world = sample_camera(rng, layout, K, settings)
                posed = [(p.obj, as_stored_in_scene_gt(T_cam_world @ p.T_world_obj)) for p in layout.objects]
                image = render_scene_image(renderer, posed, (plane, T_cam_world), K, settings.width, settings.height,
                                           random_lighting(rng), random_background(rng, settings.width, settings.height))
                rgb = degrade_rgb(image.rgb, rng, settings)
                depth_m = apply_depth_noise(settings.depth_noise, image.depth_m, K, seed, scene_id, im_id)
                depth_units = depth_to_uint16(depth_m, settings.depth_scale_mm)
                infos = [gt_info_entry(m, mv, box, depth_units > 0)
                         for m, mv, box in zip(image.masks, image.masks_visib, image.bbox_obj)]
                writer.add_image(im_id, K, rgb, depth_units, [(o.id, T) for o, T in posed],
                                 image.masks, image.masks_visib, infos)
                counts: dict[int, int] = {}
                for (obj, _), mask_visib, info in zip(posed, image.masks_visib, infos):
                    if info["px_count_all"]:
                        visib_fracts.append(info["visib_fract"])
                    if info["visib_fract"] >= settings.min_visib_fract_target:
                        counts[obj.id] = counts.get(obj.id, 0) + 1
                    if info["px_count_visib"]:
                        detections.append(detection_entry(BopDetection(
                            scene_id, im_id, obj.id, box_from_mask(mask_visib), 1.0, mask_visib)))
                targets += [Target(scene_id, im_id, obj_id, n) for obj_id, n in sorted(counts.items())]
                instances += len(posed)
                bar.update(1)
            writer.close()
    write_targets(out_dir / TARGETS_FILE, targets)
    write_detections_json(out_dir / DETECTIONS_FILE, detections)
    return SynthSummary(
        out_dir=out_dir, scenes=int(scenes), images=int(scenes) * int(images_per_scene), instances=instances,
        visible_instances=len(detections), targets=sum(t.inst_count for t in targets), detections=len(detections),
        mean_visib_fract=float(np.mean(visib_fracts)) if visib_fracts else 0.0,
        seconds=time.perf_counter() - start, renderer=renderer.name,
    )
