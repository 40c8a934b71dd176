"""Training pairs rendered on the fly: a query crop of an object in a cluttered scene, a template view, the GT.

A scene (synth/scene_sampling.py) is several training objects on a procedurally textured plane or
in the air, over a procedural background, under random lights and random intrinsics; every object
is a query candidate and the others are its distractors and occluders. Each instance shows its own
appearance or a random one (training/appearance.py). A visible instance (≥ min_visible_px pixels,
visible fraction ≥ min_visib_fract) becomes a query: cropped with the estimator's `make_query_crop`
around its visible mask, or around a jittered box (box-only detections). Its template is one of the
`nearest_templates` views closest to its viewing direction (training/template_views.py), rendered
with the object's appearance or, with grey_template_probability, as grey geometry (shaded), which
is what a geometry-only mesh gives at run time. The GT is training/ground_truth.py's; only the query
is colour-augmented. Everything is drawn from the Generator passed in (reproducible).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from novel_pose_ros.estimation.crops import DetectionRejected, QueryCrop, make_query_crop
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.networks.picopose.config import FLOW_SIZES, IMAGE_SIZE, PATCH_GRID
from novel_pose_ros.render import Renderer, create_renderer
from novel_pose_ros.synth.backgrounds import procedural_texture, random_background, support_plane
from novel_pose_ros.synth.lighting import random_lighting
from novel_pose_ros.synth.scene_sampling import sample_camera, sample_intrinsics, sample_layout
from novel_pose_ros.templates import TemplateSettings
from novel_pose_ros.training.appearance import TEXTURE_PX, geometry_only, random_appearance
from novel_pose_ros.training.augment import augment_rgb
from novel_pose_ros.training.config import DataConfig
from novel_pose_ros.training.ground_truth import affine_truth, all_flow_truths, infonce_positives
from novel_pose_ros.training.objects import ObjectPool, StoredStablePoses
from novel_pose_ros.training.photos import PhotoBank, photos_dir
from novel_pose_ros.training.template_views import TemplateViews, nearest_views
from novel_pose_ros.types import Detection, Frame, ObjectModel

LOGGER = logging.getLogger(__name__)
PLANE_TEXTURE_PX = 256
MAX_FAILED_SCENES = 20


@dataclass(frozen=True)
class TrainingPair:
    """One (query, template) pair and its ground truth (training/ground_truth.py for the definitions).

    query_rgb, template_rgb: (224, 224, 3) uint8 (the query augmented); template_mask: (224, 224) bool;
    template_centre: (2,) template's projected object origin, corner convention (network input);
    translation (2,) patch units, scale, cos_sin (2,), affine (2, 3): the GT affine;
    flow[n] (2, n, n), valid[n] (n, n) for n in 16, 32, 64; infonce_template / infonce_query (P,) patch
    indices, −1 padded. The rest describes the pair (tests, debugging).
    """

    query_rgb: np.ndarray
    template_rgb: np.ndarray
    template_mask: np.ndarray
    template_centre: np.ndarray
    translation: np.ndarray
    scale: float
    cos_sin: np.ndarray
    affine: np.ndarray
    flow: dict[int, np.ndarray]
    valid: dict[int, np.ndarray]
    infonce_template: np.ndarray
    infonce_query: np.ndarray
    object_name: str
    view: int
    grey_template: bool
    box_only: bool
    T_cam_obj: np.ndarray
    K: np.ndarray
    M_crop_img: np.ndarray


@dataclass(frozen=True)
class SceneImage:
    """A rendered training image: rgb (H, W, 3) uint8, depth_m (H, W), labels (H, W) int32 (i + 1 = instance i,
    0 = plane or background), K, instances [(object as rendered, base object, T_cam_obj)]."""

    rgb: np.ndarray
    depth_m: np.ndarray
    labels: np.ndarray
    K: np.ndarray
    instances: tuple[tuple[ObjectModel, ObjectModel, np.ndarray], ...]


class PairSampler:
    """Makes TrainingPairs from the objects of a pool; one renderer per process (created lazily)."""

    def __init__(self, pool: ObjectPool, config: DataConfig, renderer: Renderer | None = None,
                 photos: PhotoBank | None = None) -> None:
        if len(pool) == 0:
            raise ValueError("PairSampler: the object pool is empty")
        self.pool = pool
        self.config = config
        self.synth = config.synth_settings()
        self.template_settings = TemplateSettings(level=config.template_level)
        self._renderer = renderer
        self._views: TemplateViews | None = None
        self._stable = StoredStablePoses(pool.manifest.root / "stable_poses" if pool.manifest is not None else None)
        self._photos = photos  # None: the photographs next to the training meshes, loaded at first use

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = create_renderer("auto")
        return self._renderer

    @property
    def photos(self) -> PhotoBank:
        """The photographs next to the training meshes (loaded at first use; only when a photo probability > 0)."""
        if self._photos is None:
            if self.pool.manifest is None:
                raise FileNotFoundError("photo probabilities > 0 need a training-mesh folder (its photos/)")
            self._photos = PhotoBank(photos_dir(self.pool.manifest.root))
        return self._photos

    def photo(self, rng: np.random.Generator, width: int, height: int, probability: float) -> np.ndarray | None:
        """With `probability`, a (height, width, 3) uint8 view of a photograph, else None. Draws nothing from rng
        when the probability is 0, so configs without photographs sample exactly as before."""
        if probability > 0 and rng.random() < probability:
            return self.photos.view(rng, width, height)
        return None

    def appearance(self, base: ObjectModel, rng: np.random.Generator) -> ObjectModel:
        """A random appearance of `base`; with photo_texture_probability a photograph projected on it."""
        return random_appearance(base, rng, texture=self.photo(rng, TEXTURE_PX, TEXTURE_PX,
                                                                self.config.photo_texture_probability))

    def template_object(self, shown: ObjectModel, base: ObjectModel, rng: np.random.Generator) -> tuple[ObjectModel, bool]:
        """(what a template or render of the instance shows, grey): the instance as drawn in the scene
        (`shown`) or, with grey_template_probability when it has colours, its grey geometry (of `base`)."""
        grey = bool(shown.has_appearance and rng.random() < self.config.grey_template_probability)
        return (geometry_only(base) if grey else shown), grey

    @property
    def views(self) -> TemplateViews:
        if self._views is None:
            self._views = TemplateViews(self.renderer, self.template_settings, self.config.template_cache_views)
        return self._views

    def sample(self, rng: np.random.Generator, count: int, max_scenes: int = 200) -> list[TrainingPair]:
        """`count` pairs from as many scenes as it takes (RuntimeError after max_scenes scenes)."""
        pairs: list[TrainingPair] = []
        failures = 0
        for _ in range(max_scenes):
            try:
                for pair in self.scene_pairs(rng):
                    pairs.append(pair)
                    if len(pairs) == count:
                        return pairs
                failures = 0
            except Exception as exc:  # one bad mesh or scene must not end a days-long run; many in a row do
                failures += 1
                LOGGER.warning("training scene failed (%s: %s); drawing another", type(exc).__name__, exc)
                if failures >= MAX_FAILED_SCENES:
                    raise RuntimeError(f"PairSampler: {failures} scenes in a row failed; last: {exc}") from exc
        raise RuntimeError(f"PairSampler: only {len(pairs)} of {count} pairs from {max_scenes} scenes "
                           "(objects too small or too occluded for the visibility thresholds?)")

    def scene_pairs(self, rng: np.random.Generator) -> Iterator[TrainingPair]:
        """The pairs of one layout seen from `images_per_layout` cameras."""
        cfg = self.config
        low, high = self.synth.objects_per_scene
        indices = self.pool.draw(rng, int(rng.integers(low, high + 1)))
        bases = [self.pool.get(int(i)) for i in indices]
        try:
            layout = sample_layout(bases, rng, self.synth, self._stable)
        except ValueError:  # nothing could be placed: next scene
            return
        shown = {}
        for placed in layout.objects:
            base = placed.obj
            p = cfg.textured_random_appearance_probability if base.has_appearance else cfg.random_appearance_probability
            shown[id(placed)] = self.appearance(base, rng) if rng.random() < p else base
        K = sample_intrinsics(rng, self.synth)
        texture = self.photo(rng, PLANE_TEXTURE_PX, PLANE_TEXTURE_PX, cfg.photo_plane_probability)
        plane = support_plane(procedural_texture(rng, PLANE_TEXTURE_PX) if texture is None else texture,
                              rng.uniform(*self.synth.plane_half_size_m),
                              rng.uniform(*self.synth.plane_texture_tile_m))
        for _ in range(cfg.images_per_layout):
            try:
                T_cam_world = sample_camera(rng, layout, K, self.synth)
            except ValueError:
                return
            instances = tuple((shown[id(p)], p.obj, T_cam_world @ p.T_world_obj) for p in layout.objects)
            image = self.render_image(instances, (plane, T_cam_world), K, rng)
            yield from self.image_pairs(image, rng)

    def render_image(self, instances, plane, K: np.ndarray, rng: np.random.Generator) -> SceneImage:
        """Objects and plane rendered apart and composited by depth over a procedural background."""
        w, h = self.synth.width, self.synth.height
        lighting = random_lighting(rng)
        objects = self.renderer.render([(o, T) for o, _, T in instances], K, w, h, lighting)
        floor = self.renderer.render([plane], K, w, h, lighting)
        in_front = (objects.labels > 0) & ((floor.depth_m == 0) | (objects.depth_m <= floor.depth_m))
        background = self.photo(rng, w, h, self.config.photo_background_probability)
        background = random_background(rng, w, h) if background is None else background
        rgb = np.where(in_front[..., None], objects.rgb, np.where((floor.depth_m > 0)[..., None], floor.rgb, background))
        depth = np.where(in_front, objects.depth_m, 0.0).astype(np.float32)
        return SceneImage(np.ascontiguousarray(rgb, dtype=np.uint8), depth,
                          np.where(in_front, objects.labels, 0).astype(np.int32), K, instances)

    def image_pairs(self, image: SceneImage, rng: np.random.Generator) -> Iterator[TrainingPair]:
        cfg = self.config
        counts = np.bincount(image.labels.ravel(), minlength=len(image.instances) + 1)
        candidates = [i for i in range(len(image.instances)) if counts[i + 1] >= cfg.min_visible_px]
        used = 0
        for index in rng.permutation(candidates):
            if used == cfg.queries_per_image:
                break
            shown, base, T = image.instances[int(index)]
            height, width = image.labels.shape
            alone = int((self.renderer.render([(shown, T)], image.K, width, height).labels > 0).sum())
            if alone == 0 or counts[index + 1] / alone < cfg.min_visib_fract:
                continue
            pair = self.make_pair(image, int(index), rng)
            if pair is not None:
                used += 1
                yield pair

    def query_crop(self, image: SceneImage, index: int, rng: np.random.Generator) -> tuple[QueryCrop, bool] | None:
        """The estimator's query crop of instance `index` around its visible mask or, with
        box_only_probability, around a jittered box without mask; (crop, box_only), None if rejected."""
        cfg = self.config
        base = image.instances[index][1]
        mask = image.labels == index + 1
        box = box_from_mask(mask)
        box_only = bool(rng.random() < cfg.box_only_probability)
        if box_only:
            x, y, bw, bh = box
            dx0, dx1, dy0, dy1 = rng.uniform(-cfg.box_jitter, cfg.box_jitter, size=4)
            box = (x + dx0 * bw, y + dy0 * bh, max(bw * (1 + dx1 - dx0), 2.0), max(bh * (1 + dy1 - dy0), 2.0))
        try:
            crop = make_query_crop(Frame(image.rgb, image.K), Detection(base.name, box, mask=None if box_only else mask),
                                   0, base.name, IMAGE_SIZE, 1)
        except DetectionRejected:
            return None
        return crop, box_only

    def make_pair(self, image: SceneImage, index: int, rng: np.random.Generator) -> TrainingPair | None:
        cfg = self.config
        shown, base, T_q = image.instances[index]
        made = self.query_crop(image, index, rng)
        if made is None:
            return None
        crop, box_only = made
        template_obj, grey = self.template_object(shown, base, rng)
        view = int(rng.choice(nearest_views(T_q, cfg.template_level, cfg.nearest_templates)))
        template = self.views.view(template_obj, view)
        affine = affine_truth(template, T_q, image.K, crop.M_crop_img)
        tolerance = cfg.visibility_tolerance(base.diameter_m)
        flows = all_flow_truths(template, T_q, image.K, crop.M_crop_img, image.depth_m, image.labels, index + 1, tolerance)
        if not flows[FLOW_SIZES[-1]].valid.any():
            return None
        infonce_t, infonce_q = infonce_positives(flows[PATCH_GRID], rng, cfg.infonce_max_pairs)
        return TrainingPair(
            query_rgb=augment_rgb(crop.rgb, rng, cfg.augment), template_rgb=template.rgb, template_mask=template.mask,
            template_centre=template.centre_crop_px + 0.5, translation=affine.translation, scale=affine.scale,
            cos_sin=affine.cos_sin, affine=affine.affine, flow={n: f.flow for n, f in flows.items()},
            valid={n: f.valid for n, f in flows.items()}, infonce_template=infonce_t, infonce_query=infonce_q,
            object_name=base.name, view=view, grey_template=grey, box_only=box_only, T_cam_obj=T_q, K=image.K,
            M_crop_img=crop.M_crop_img)
