"""The Estimator: frame + detections -> poses, the one entry point a script, the BOP runner or the ROS node uses.

    estimator = Estimator(ObjectLibrary.from_yaml("config/objects.yaml"), EstimatorConfig())
    poses = estimator.estimate(frame, detections)

Objects are onboarded at construction (templates rendered or read from the cache, template
features computed or read from the cache). A detection that cannot be handled (unknown
object, mask too small, box outside the image, an error inside the networks) yields a
`DetectionFailure` with a cause and no pose, and never costs another detection its pose.

Per frame: coarse stages (PicoPose or Co-op) -> verification of every hypothesis against its
detection, each first aligned to the detection mask (silhouette choice; with depth only the chosen one is
aligned) -> optional Co-op refiner and selector -> with depth, the check of the final pose against the
measured depth (estimation/depth_refinement.py) -> the pose confidence from one more render of the final pose
(estimation/confidence.py).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from novel_pose_ros.estimation.confidence import ConfidenceModel, default_confidence_model_path, pose_evidence
from novel_pose_ros.estimation.config import EstimatorConfig, Pipeline
from novel_pose_ros.estimation.coop_coarse_stage import CoarseTemplates, CoopCoarseStage
from novel_pose_ros.estimation.crops import DetectionRejected, QueryCrop, make_query_crop
from novel_pose_ros.estimation.depth_correspondences import DepthImage, clean_depth, uses_depth
from novel_pose_ros.estimation.depth_refinement import choose_by_depth
from novel_pose_ros.estimation.diagnosis import Oracle, StageDiagnostics, at_true_depth
from novel_pose_ros.estimation.official_picopose import OFFICIAL_RULES
from novel_pose_ros.estimation.picopose_stages import DetectionOutcome, ObjectTemplates, PicoPoseStages
from novel_pose_ros.estimation.refiner_stage import RefinerSettings, RefinerStage
from novel_pose_ros.estimation.selector_stage import SelectorStage
from novel_pose_ros.estimation.silhouette_alignment import align_silhouette
from novel_pose_ros.estimation.template_bank import build_template_bank
from novel_pose_ros.estimation.verification import (SilhouetteAgreement, agreement_of, choose_by_silhouette,
                                                     crop_camera, evidence_mask, render_in_crop, rendered_checks)
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.paths import default_templates_dir
from novel_pose_ros.render import SHADED, Renderer, create_renderer
from novel_pose_ros.runtime import InferenceBackend, create_backend
from novel_pose_ros.runtime.coop_weights import create_coop_backend
from novel_pose_ros.templates import TemplateSettings, ensure_templates, load_template_set
from novel_pose_ros.types import Detection, Frame, ObjectModel, PoseEstimate, PoseHypothesis, StageTimings

LOGGER = logging.getLogger(__name__)
PICOPOSE_STAGES = ("crop", "backbone", "stage1", "stage2", "stage3", "pnp")
COOP_STAGES = ("crop", "encoder", "match", "pnp")


@dataclass(frozen=True)
class DetectionFailure:
    """Why detection `detection_index` got no pose. cause: a stable key for counting
    (unknown_object, mask_too_small, mask_size_mismatch, box_outside_image, depth_missing, estimator_error)."""

    detection_index: int
    object_id: str
    cause: str
    message: str


@dataclass(frozen=True)
class EstimationReport:
    """Everything one `run` produced: poses (detection order), failures and the frame's stage timings."""

    poses: list[PoseEstimate]
    failures: list[DetectionFailure]
    timings: StageTimings = field(default_factory=StageTimings)
    diagnostics: dict[int, StageDiagnostics] = field(default_factory=dict)  # by detection index (PicoPose stages)


def resolve_picopose_mode(config: EstimatorConfig) -> str:
    """"ours" or "official" for config.picopose_mode; "auto" is "official" for an official checkpoint
    (logged: the user asked for those weights, so they get the rules they were trained and published with)."""
    if config.picopose_mode != "auto":
        return config.picopose_mode
    from novel_pose_ros.runtime.weights import is_official_checkpoint, resolve_checkpoint

    checkpoint = resolve_checkpoint(config.network, config.weights)
    if checkpoint is not None and checkpoint.is_file() and is_official_checkpoint(checkpoint):
        LOGGER.info("%s is an official PicoPose checkpoint: picopose_mode official (the official stage rules; set "
                    "picopose_mode: ours for ours)", checkpoint)
        return "official"
    return "ours"


class Estimator:
    """PicoPose-style 6D pose estimation of the objects of a library."""

    def __init__(
        self,
        objects: ObjectLibrary,
        config: EstimatorConfig | None = None,
        backend: InferenceBackend | None = None,
        renderer: Renderer | None = None,
        show_progress: bool = False,
    ) -> None:
        self.config = config or EstimatorConfig()
        self.objects = objects
        self._renderer = renderer
        self._show_progress = show_progress
        self.pipeline = Pipeline.parse(self.config.pipeline)
        cfg = self.config
        self.picopose_mode: str | None = None  # the PicoPose stages' rules (None: the Co-op coarse stage runs)
        if self.pipeline.coarse == "coop":
            self.backend = backend or create_coop_backend("coop_coarse", cfg.backend, cfg.coarse_weights, cfg.device,
                                                          precision=cfg.precision, max_batch=cfg.max_batch)
            self._stages = CoopCoarseStage(self.backend, cfg)
        else:
            self.backend = backend or create_backend(cfg.backend, cfg.network, cfg.weights, cfg.device, seed=cfg.seed,
                                                     precision=cfg.precision, max_batch=cfg.max_batch,
                                                     torch_autocast=cfg.torch_autocast)
            self.picopose_mode = resolve_picopose_mode(cfg)
            rules = frozenset(OFFICIAL_RULES) if self.picopose_mode == "official" else frozenset(cfg.official_rules)
            self._stages = PicoPoseStages(self.backend, cfg, rules)
        self._refiner = self._selector = None
        if self.pipeline.refine:
            self._refiner = RefinerStage(
                create_coop_backend("coop_refiner", cfg.backend, cfg.refiner_weights, cfg.device,
                                    precision=cfg.precision, max_batch=cfg.max_batch),
                self.renderer, RefinerSettings(iterations=cfg.refine_iterations, max_batch=cfg.max_batch))
        if self.pipeline.select:
            self._selector = SelectorStage(
                create_coop_backend("coop_selector", cfg.backend, cfg.selector_weights, cfg.device,
                                    precision=cfg.precision, max_batch=cfg.max_batch),
                self.renderer, self._refiner.settings.window_margin, cfg.max_batch)
        self.confidence_model = _load_confidence_model(cfg.confidence_model)
        self._templates: dict[str, ObjectTemplates | CoarseTemplates] = {}
        self.onboarding_s: dict[str, float] = {}
        for obj in objects:
            self.onboard(obj)

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = create_renderer("auto")
        return self._renderer

    def onboard(self, obj: ObjectModel) -> None:
        """Templates and template features of one object (cached on disk; rebuilt only when stale)."""
        start = time.perf_counter()
        templates_dir = self.config.templates_dir or default_templates_dir()
        settings = TemplateSettings(level=self.config.template_level)
        report = ensure_templates(obj, templates_dir, settings, self.renderer, show_progress=self._show_progress)
        bank = build_template_bank(load_template_set(report.folder))
        self._templates[obj.name] = self._stages.templates(bank, report.folder)
        self.onboarding_s[obj.name] = time.perf_counter() - start
        LOGGER.info("onboarded '%s' (%d templates) in %.2f s", obj.name, len(bank), self.onboarding_s[obj.name])

    def estimate(self, frame: Frame, detections: list[Detection]) -> list[PoseEstimate]:
        """Poses of the detections that could be handled, in detection order (empty list for none)."""
        return self.run(frame, detections).poses

    def run(self, frame: Frame, detections: list[Detection], truths: list[np.ndarray | None] | None = None,
            oracle: Oracle = Oracle()) -> EstimationReport:
        """Poses, failures, timings. truths / oracle: for diagnosis only (estimation/diagnosis.py): the true
        T_cam_obj of each detection (or None) and which stage outputs to replace by it."""
        if truths is not None and len(truths) != len(detections):
            raise ValueError(f"truths: expected one per detection ({len(detections)}), got {len(truths)}")
        if oracle.any and truths is None:
            raise ValueError(f"oracle '{oracle.label}' needs the true poses (truths)")
        timings: dict[str, float] = dict.fromkeys(self.stage_names, 0.0)
        if uses_depth(self.config.use_depth, frame.depth_m) and frame.depth_m is None:
            return EstimationReport([], [DetectionFailure(i, d.object_id, "depth_missing",
                                                          f"detection {i}: use_depth is 'on' but the frame has no depth")
                                         for i, d in enumerate(detections)], StageTimings(timings))
        start = time.perf_counter()
        crops, failures = self._crops(frame, detections)
        depth = clean_depth(frame.depth_m) if uses_depth(self.config.use_depth, frame.depth_m) else None
        timings["crop"] = time.perf_counter() - start
        crop_truths = [truths[c.detection_index] for c in crops] if truths is not None else None
        outcomes = self._run_stages(crops, frame, timings, failures, crop_truths, oracle, depth)
        crops_by_index = {c.detection_index: c for c in crops}
        outcomes = self._verify(frame, detections, crops_by_index, outcomes, timings, depth is not None)
        coarse_poses = {o.detection_index: o.T_cam_obj for o in outcomes}
        if self._selector is not None and outcomes:
            outcomes = self._refine_and_select(frame, detections, outcomes, timings)
        elif self._refiner is not None and outcomes:
            outcomes = self._refine(frame, detections, outcomes, timings)
        if depth is not None:
            outcomes = self._check_depth(detections, crops_by_index, outcomes, frame.K, depth, timings)
        if oracle.depth:
            outcomes = [dataclasses.replace(o, T_cam_obj=at_true_depth(o.T_cam_obj, truths[o.detection_index]))
                        if truths[o.detection_index] is not None else o for o in outcomes]
        evidence = self._evidence(frame, detections, crops_by_index, outcomes, coarse_poses, timings)
        confidences = (self.confidence_model.predict(evidence) if self.confidence_model is not None and evidence
                       else [None] * len(outcomes))
        stage_timings = StageTimings(dict(timings))
        poses, instances = [], {}
        for outcome, features, confidence in zip(outcomes, evidence, confidences):
            detection = detections[outcome.detection_index]
            name = self.objects.get(detection.object_id).name
            instance = instances.get(name, 0)
            instances[name] = instance + 1
            poses.append(PoseEstimate(
                object_id=name, instance=instance, T_cam_obj=outcome.T_cam_obj, score=float(detection.score),
                detection_index=outcome.detection_index, timings=stage_timings, hypotheses=outcome.hypotheses,
                confidence=None if confidence is None else float(confidence), evidence=features,
            ))
        for failure in failures:
            LOGGER.debug("detection %d (%s): no pose: %s", failure.detection_index, failure.object_id, failure.message)
        diagnostics = {o.detection_index: o.diagnostics for o in outcomes if o.diagnostics is not None}
        return EstimationReport(poses, sorted(failures, key=lambda f: f.detection_index), stage_timings, diagnostics)

    def _crops(self, frame: Frame, detections: list[Detection]) -> tuple[list[QueryCrop], list[DetectionFailure]]:
        crops, failures = [], []
        for index, detection in enumerate(detections):
            obj = self.objects.find(detection.object_id)
            if obj is None or obj.name not in self._templates:
                failures.append(DetectionFailure(index, detection.object_id, "unknown_object",
                                                 f"detection {index}: unknown object '{detection.object_id}' "
                                                 f"(known: {', '.join(self.objects.names)})"))
                continue
            try:
                crops.append(make_query_crop(frame, detection, index, obj.name, 224, self.config.min_mask_pixels,
                                             self.config.mask_query_background))
            except DetectionRejected as exc:
                failures.append(DetectionFailure(index, detection.object_id, exc.cause, str(exc)))
        return crops, failures

    def _run_stages(self, crops: list[QueryCrop], frame: Frame, timings: dict[str, float],
                    failures: list[DetectionFailure], truths: list | None = None,
                    oracle: Oracle = Oracle(), depth: DepthImage | None = None) -> list[DetectionOutcome]:
        """All crops in one batch; if that fails, one crop at a time so only the failing ones are lost."""
        try:
            if truths is not None:
                if not isinstance(self._stages, PicoPoseStages):
                    raise ValueError(f"diagnosis against the truth needs the PicoPose coarse stage, not "
                                     f"'{self.pipeline.coarse}'")
                return self._stages.run(crops, self._templates, frame.K, timings, truths, oracle, depth=depth)
            return self._stages.run(crops, self._templates, frame.K, timings, depth=depth)
        except Exception as exc:  # e.g. out of memory in a large batch, or a numerical failure in one crop
            if len(crops) <= 1:
                failures += [DetectionFailure(c.detection_index, c.object_name, "estimator_error",
                                              f"detection {c.detection_index}: {type(exc).__name__}: {exc}") for c in crops]
                return []
            LOGGER.warning("batched estimation of %d detections failed (%s: %s); retrying one by one",
                           len(crops), type(exc).__name__, exc)
        outcomes = []
        for index, crop in enumerate(crops):
            outcomes += self._run_stages([crop], frame, timings, failures,
                                         None if truths is None else [truths[index]], oracle, depth)
        return outcomes

    def _verify(self, frame: Frame, detections: list[Detection], crops: dict[int, QueryCrop],
                outcomes: list[DetectionOutcome], timings: dict[str, float],
                with_depth: bool = False) -> list[DetectionOutcome]:
        """Every hypothesis rendered once and its silhouette compared with the detection (verification.py). With
        silhouette_alignment and a detection mask, each hypothesis is first fitted to the mask in depth and image
        position (silhouette_alignment.py; source '<source>+aligned' where it moved), so that hypotheses compete
        at their best placement, not at PnP's; with the silhouette rule the pose becomes the one of best IoU.
        with_depth (the frame's depth is used): the translation comes from the depth (3D–3D fit, depth check), so
        only the chosen pose is aligned, as before; aligning every hypothesis there cost AR (docs/DEPTH.md)."""
        verify = align = 0.0
        result = []
        for outcome in outcomes:
            detection, crop = detections[outcome.detection_index], crops[outcome.detection_index]
            obj, evidence = self.objects.get(detection.object_id), evidence_mask(crop, detection)
            aligning = self.config.silhouette_alignment and crop.mask is not None
            K_crop = crop_camera(frame.K, crop.M_crop_img)
            hypotheses, agreements, silhouettes = [], [], []
            for hypothesis in outcome.hypotheses:
                start = time.perf_counter()
                render = render_in_crop(self.renderer, obj, hypothesis.T_cam_obj, frame.K, crop)
                silhouettes.append(None if render is None else render.mask)
                agreement = SilhouetteAgreement() if render is None else agreement_of(render.mask, evidence)
                aligned_at = time.perf_counter()
                verify += aligned_at - start
                if aligning and not with_depth and render is not None:
                    T, fit = align_silhouette(hypothesis.T_cam_obj, render.mask, K_crop, evidence)
                    if fit is not None and fit.moved:
                        hypothesis = dataclasses.replace(hypothesis, source=f"{hypothesis.source}+aligned", T_cam_obj=T)
                        agreement = fit.agreement
                align += time.perf_counter() - aligned_at
                hypotheses.append(hypothesis)
                agreements.append(agreement)
            chosen = _same_pose(outcome.T_cam_obj, outcome.hypotheses)
            outcome = dataclasses.replace(outcome, hypotheses=tuple(hypotheses), agreements=tuple(agreements),
                                          T_cam_obj=outcome.T_cam_obj if chosen is None else hypotheses[chosen].T_cam_obj)
            outcome = (choose_by_silhouette(outcome, agreements) if self.config.hypothesis_rule == "silhouette"
                       else outcome)
            if aligning and with_depth:
                start = time.perf_counter()
                outcome = self._align_chosen(frame, obj, crop, K_crop, outcome, silhouettes)
                align += time.perf_counter() - start
            result.append(outcome)
        timings["verify"] = timings.get("verify", 0.0) + verify
        if self.config.silhouette_alignment:
            timings["align"] = timings.get("align", 0.0) + align
        return result

    def _align_chosen(self, frame: Frame, obj: ObjectModel, crop: QueryCrop, K_crop: np.ndarray,
                      outcome: DetectionOutcome, silhouettes: list[np.ndarray | None]) -> DetectionOutcome:
        """The chosen pose alone fitted to the mask, from its verification render (`silhouettes`, one per hypothesis;
        rendered here only when the pose is none of them), appended as '<source>+aligned'."""
        index = _same_pose(outcome.T_cam_obj, outcome.hypotheses)
        if index is not None:
            silhouette = silhouettes[index]
        else:
            render = render_in_crop(self.renderer, obj, outcome.T_cam_obj, frame.K, crop)
            silhouette = None if render is None else render.mask
        if silhouette is None:
            return outcome
        T, fit = align_silhouette(outcome.T_cam_obj, silhouette, K_crop, crop.mask)
        if fit is None or not fit.moved:
            return outcome
        chosen = None if index is None else outcome.hypotheses[index]
        source = f"{chosen.source if chosen is not None else outcome.source}+aligned"
        iou = fit.agreement.iou
        hypothesis = (dataclasses.replace(chosen, T_cam_obj=T, score=iou, source=source) if chosen is not None
                      else PoseHypothesis(T, iou, source))
        return dataclasses.replace(outcome, T_cam_obj=T, hypotheses=outcome.hypotheses + (hypothesis,))

    def _check_depth(self, detections: list[Detection], crops: dict[int, QueryCrop], outcomes: list[DetectionOutcome],
                     K: np.ndarray, depth: DepthImage, timings: dict[str, float]) -> list[DetectionOutcome]:
        """The final pose and each verified hypothesis checked against the measured depth, the one it explains best
        kept (depth_refinement.choose_by_depth); a pose the check moves or picks is appended to the hypotheses as
        '<source>+depth' (score: the share of the mask's measured pixels that agree with it)."""
        start = time.perf_counter()
        result = []
        for outcome in outcomes:
            detection = detections[outcome.detection_index]
            candidates = [outcome.T_cam_obj] + [h.T_cam_obj for h in outcome.hypotheses[:len(outcome.agreements)]
                                                if not np.array_equal(h.T_cam_obj, outcome.T_cam_obj)]
            picked, check = choose_by_depth(self.renderer, self.objects.get(detection.object_id), candidates, K,
                                            crops[outcome.detection_index], depth, self.config.depth_icp_iterations)
            if picked == 0 and not check.improved:
                LOGGER.debug("detection %d: depth check kept the pose (%s)", outcome.detection_index,
                             check.failure or f"agreement {check.agreement_before:.2f}")
                result.append(outcome)
                continue
            index = _same_pose(candidates[picked], outcome.hypotheses)
            chosen = None if index is None else outcome.hypotheses[index]
            source = f"{chosen.source if chosen is not None else outcome.source}+depth"
            hypothesis = (dataclasses.replace(chosen, T_cam_obj=check.T_cam_obj, score=check.agreement, source=source)
                          if chosen is not None else PoseHypothesis(check.T_cam_obj, check.agreement, source))
            result.append(dataclasses.replace(outcome, T_cam_obj=check.T_cam_obj,
                                              hypotheses=outcome.hypotheses + (hypothesis,)))
        timings["depth"] = timings.get("depth", 0.0) + time.perf_counter() - start
        return result

    def _evidence(self, frame: Frame, detections: list[Detection], crops: dict[int, QueryCrop],
                  outcomes: list[DetectionOutcome], coarse_poses: dict[int, np.ndarray],
                  timings: dict[str, float]) -> list[dict[str, float]]:
        """The confidence features of each outcome's final pose (confidence.pose_evidence), from one shaded
        render of it; a pose that is one of the verified hypotheses keeps that hypothesis' agreement."""
        start = time.perf_counter()
        result = []
        for outcome in outcomes:
            detection, crop = detections[outcome.detection_index], crops[outcome.detection_index]
            verified = outcome.hypotheses[:len(outcome.agreements)]
            final = _same_pose(outcome.T_cam_obj, verified)
            coarse = _same_pose(coarse_poses[outcome.detection_index], verified)
            evidence = evidence_mask(crop, detection)
            render = render_in_crop(self.renderer, self.objects.get(detection.object_id), outcome.T_cam_obj, frame.K,
                                    crop, SHADED)
            agreement = (outcome.agreements[final] if final is not None else SilhouetteAgreement() if render is None
                         else agreement_of(render.mask, evidence))
            checks = rendered_checks(render, crop, evidence)
            result.append(pose_evidence(outcome.T_cam_obj, None if coarse is None else verified[coarse], agreement,
                                        verified, outcome.agreements, detection.bbox_xywh, checks))
        timings["confidence"] = timings.get("confidence", 0.0) + time.perf_counter() - start
        return result

    def _refine(self, frame: Frame, detections: list[Detection], outcomes: list[DetectionOutcome],
                timings: dict[str, float]) -> list[DetectionOutcome]:
        """The coarse poses through the refiner; a detection the refiner cannot handle keeps its coarse pose."""
        objects = [self.objects.get(detections[o.detection_index].object_id) for o in outcomes]
        refined = self._refiner.refine(frame, objects, [o.T_cam_obj for o in outcomes], timings)
        result = []
        for outcome, pose in zip(outcomes, refined):
            if pose.failure is not None:
                LOGGER.debug("detection %d: refinement skipped (%s); coarse pose kept", outcome.detection_index,
                             pose.failure)
                result.append(outcome)
                continue
            hypothesis = PoseHypothesis(pose.T_cam_obj, pose.weight, "refined")
            result.append(dataclasses.replace(outcome, T_cam_obj=pose.T_cam_obj, source=f"{outcome.source}+refined",
                                              hypotheses=outcome.hypotheses + (hypothesis,)))
        return result

    def _refine_and_select(self, frame: Frame, detections: list[Detection], outcomes: list[DetectionOutcome],
                           timings: dict[str, float]) -> list[DetectionOutcome]:
        """Every coarse hypothesis through the refiner, then the selector's best of the refined poses (Co-op's
        5-hypothesis mode); a hypothesis the refiner cannot handle competes with its coarse pose."""
        objects = [self.objects.get(detections[o.detection_index].object_id) for o in outcomes]
        candidates = [[h.T_cam_obj for h in o.hypotheses] for o in outcomes]
        flat_objects = [obj for obj, poses in zip(objects, candidates) for _ in poses]
        refined = self._refiner.refine(frame, flat_objects, [T for poses in candidates for T in poses], timings)
        per_detection, start = [], 0
        for poses in candidates:
            per_detection.append(refined[start:start + len(poses)])
            start += len(poses)
        scores = self._selector.scores(frame, objects, [[p.T_cam_obj for p in r] for r in per_detection], timings)
        result = []
        for outcome, poses, logits in zip(outcomes, per_detection, scores):
            best = int(np.argmax(logits)) if np.isfinite(logits).any() else 0
            selected = tuple(PoseHypothesis(p.T_cam_obj, float(1.0 / (1.0 + np.exp(-s))) if np.isfinite(s) else 0.0,
                                            f"{h.source}+refined" if p.failure is None else h.source)
                             for h, p, s in zip(outcome.hypotheses, poses, logits))
            result.append(dataclasses.replace(outcome, T_cam_obj=poses[best].T_cam_obj,
                                              source=f"{outcome.source}+refined+selected",
                                              hypotheses=outcome.hypotheses + selected))
        return result

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The StageTimings keys of this pipeline."""
        coarse = PICOPOSE_STAGES if self.pipeline.coarse == "picopose" else COOP_STAGES
        coarse += ("verify",) + (("align",) if self.config.silhouette_alignment else ())
        return (coarse + (("refine",) if self._refiner is not None else ()) + (("select",) if self._selector else ())
                + ("confidence",))

    @property
    def template_counts(self) -> dict[str, int]:
        return {name: len(t.bank) for name, t in self._templates.items()}

    def templates_of(self, name: str) -> ObjectTemplates | CoarseTemplates:
        return self._templates[name]



def _same_pose(T: np.ndarray, hypotheses) -> int | None:
    """Index of the hypothesis whose pose is T (the estimator's own arrays: exact equality), else None."""
    return next((i for i, h in enumerate(hypotheses) if np.array_equal(h.T_cam_obj, T)), None)


def _load_confidence_model(setting: str | None) -> ConfidenceModel | None:
    """EstimatorConfig.confidence_model: None -> the shipped model, "none" -> no confidence, else a file."""
    if setting is not None and str(setting).lower() == "none":
        return None
    return ConfidenceModel.load(default_confidence_model_path() if setting is None else setting)
