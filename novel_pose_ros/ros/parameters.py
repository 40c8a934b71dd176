"""The pose_estimator node's parameters: declared with descriptors, validated in one place, mapped to the core config.

Parameters marked read-only take effect at configure time (they rebuild the estimator or the
subscriptions); the others can be changed at run time through the parameter service and are
read for every frame. An invalid value is refused with a reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from novel_pose_ros.estimation import EstimatorConfig
from novel_pose_ros.estimation.config import HYPOTHESIS_RULES, PICOPOSE_MODES, PIPELINES
from novel_pose_ros.networks.picopose.config import CONFIGS
from novel_pose_ros.paths import default_objects_file
from novel_pose_ros.runtime import BACKENDS
from novel_pose_ros.runtime.engine_cache import PRECISIONS


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    bounds: tuple[float, float] | None = None
    read_only: bool = True


SPECS = (
    ParamSpec("objects_file", "", "objects YAML (empty: the bundled config/objects.yaml)"),
    ParamSpec("templates_dir", "", "template cache folder (empty: ~/.cache/novel_pose_ros/templates)"),
    ParamSpec("weights", "", "PicoPose checkpoint (empty: the shipped weights of `network`; untrained if none shipped)"),
    ParamSpec("network", "small_cnn", "PicoPose configuration", choices=tuple(sorted(CONFIGS))),
    ParamSpec("backend", "auto", "inference back end", choices=BACKENDS),
    ParamSpec("device", "cpu", "inference device", choices=("cpu", "cuda")),
    ParamSpec("precision", "fp16", "TensorRT engine precision (other back ends run fp32)", choices=PRECISIONS),
    ParamSpec("hypotheses", EstimatorConfig.hypotheses, "templates that go on to PnP (PicoPose stage 3)", bounds=(1, 64)),
    ParamSpec("templates_considered", EstimatorConfig.templates_considered, "templates kept after stage 1; with a mask "
              "the `hypotheses` whose stage-2 silhouette fits it best go on", bounds=(1, 64)),
    ParamSpec("hypothesis_rule", EstimatorConfig.hypothesis_rule, "how pose hypotheses are chosen: silhouette IoU "
              "with the detection, PnP inlier count or ratio", choices=HYPOTHESIS_RULES),
    ParamSpec("picopose_mode", EstimatorConfig.picopose_mode, "whose rules the PicoPose stages follow: ours, the "
              "official code's, or auto (official for an official checkpoint)", choices=PICOPOSE_MODES),
    ParamSpec("min_inliers", EstimatorConfig.min_inliers, "PnP hypotheses with fewer inliers do not compete",
              bounds=(4, 100_000)),
    ParamSpec("inplane_hypotheses", EstimatorConfig.inplane_hypotheses, "in-plane turns of stage 2's angle tried "
              "per template: 1, 2, 4 or 8", bounds=(1, 8)),
    ParamSpec("silhouette_alignment", EstimatorConfig.silhouette_alignment, "fit each hypothesis' depth and "
              "image position to the detection mask before they are compared (detections with a mask; with depth the "
              "chosen pose only)"),
    ParamSpec("pipeline", "picopose", "coarse stage (PicoPose or Co-op), then optionally the Co-op refiner "
              "(+refine) and selector (+refine+select)", choices=PIPELINES),
    ParamSpec("coarse_weights", "", "Co-op coarse checkpoint (empty: the shipped one)"),
    ParamSpec("refiner_weights", "", "Co-op refiner checkpoint (empty: the shipped one)"),
    ParamSpec("selector_weights", "", "Co-op selector checkpoint (empty: the shipped one)"),
    ParamSpec("refine_iterations", 1, "render-and-compare rounds of the refiner", bounds=(1, 10)),
    ParamSpec("max_batch", 32, "largest network batch", bounds=(1, 1024)),
    ParamSpec("min_mask_pixels", 64, "smaller detection masks are rejected", bounds=(1, 1_000_000)),
    ParamSpec("use_masks", False, "subscribe to detection_masks (label image, value = detection index + 1)"),
    ParamSpec("use_depth", False, "subscribe to depth (16UC1 mm or 32FC1 m, registered to the colour image) and "
              "estimate with it (docs/DEPTH.md)"),
    ParamSpec("use_projection_matrix", False, "take K from CameraInfo.p (rectified topics) instead of k"),
    ParamSpec("sync_slop_s", 0.02, "largest stamp difference between synchronised inputs", bounds=(0.0, 1.0)),
    ParamSpec("queue_size", 10, "per-topic queue of the synchroniser", bounds=(1, 100)),
    ParamSpec("sync_policy", "exact", "how detections find their camera frame: exact (their stamp, within "
              "sync_slop_s) or nearest (the nearest cached frame: detectors that re-stamp)", choices=("exact", "nearest")),
    ParamSpec("image_cache_s", 5.0, "camera frames kept for late detections (seconds after the newest frame)",
              bounds=(0.1, 60.0)),
    ParamSpec("image_cache_mib", 512.0, "memory bound of the camera frame cache (MiB of image data)",
              bounds=(1.0, 16384.0)),
    ParamSpec("input_reliability", "best_effort", "QoS reliability of the inputs", choices=("best_effort", "reliable")),
    ParamSpec("target_frame", "", "publish poses in this frame (empty: the image's optical frame; needs /tf), "
              "transformed at the image stamp (interpolated, as tf2 does)"),
    ParamSpec("tf_timeout_s", 0.1, "how long a frame waits for /tf to reach its stamp before it is dropped (cause "
              "tf_lookup)", bounds=(0.0, 10.0)),
    ParamSpec("tf_cache_s", 10.0, "seconds of /tf history kept for target_frame lookups", bounds=(0.5, 600.0)),
    ParamSpec("frame_prefix", "", "prefix of the instance TF frames (<prefix><object>_<instance>): one per camera "
              "when several cameras share /tf"),
    ParamSpec("instance_timeout_s", 1.0, "an instance not seen for this long (image stamps) loses its id, and its "
              "markers are deleted", bounds=(0.01, 3600.0)),
    ParamSpec("instance_match_iou", 0.3, "a detection continues an instance whose mask (else box) overlaps it by "
              "this IoU ...", bounds=(0.01, 1.0)),
    ParamSpec("instance_match_distance", 0.5, "... or whose position is within this many object diameters",
              bounds=(0.01, 100.0)),
    ParamSpec("score_threshold", 0.0, "detections with a lower score are ignored", bounds=(0.0, 1.0), read_only=False),
    ParamSpec("min_confidence", 0.0, "poses of lower confidence (estimated probability of MSSD < 0.2 diameter) are "
              "held back from /object_poses, TF and markers (still in ~/detections_3d, flagged)", bounds=(0.0, 1.0),
              read_only=False),
    ParamSpec("confidence_model", "", "pose-confidence model JSON (empty: the shipped one; 'none': no confidence, "
              "poses ranked by detection score)"),
    ParamSpec("publish_tf", True, "broadcast <object>_<instance> frames", read_only=False),
    ParamSpec("publish_markers", True, "publish ~/markers", read_only=False),
    ParamSpec("publish_overlay", True, "publish ~/overlay when someone subscribes", read_only=False),
    ParamSpec("marker_lifetime_s", 1.0, "lifetime of RViz markers (0 = forever)", bounds=(0.0, 3600.0), read_only=False),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics", bounds=(0.1, 60.0)),
    ParamSpec("diagnostics_window_s", 10.0, "the window of /diagnostics' rates, drop share, failures, latency and "
              "level (OK / WARN / ERROR / STALE)", bounds=(1.0, 600.0)),
    ParamSpec("autostart", True, "configure and activate on start (lifecycle)"),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    # read_only is enforced by our own callback (declare): refused while configured, accepted between cleanup
    # and configure, which rclpy's descriptor flag (refused always) cannot express
    description = spec.description + (" [set while unconfigured: takes effect at configure]" if spec.read_only else "")
    descriptor = ParameterDescriptor(description=description, read_only=False)
    if spec.choices:
        descriptor.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.bounds is not None:
        low, high = spec.bounds
        if isinstance(spec.default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
    return descriptor


def validate(name: str, value: Any) -> str | None:
    """Why `value` is not acceptable for parameter `name`, or None when it is."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return None
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got '{value}'"
    if spec.bounds is not None and not isinstance(value, bool) and not spec.bounds[0] <= value <= spec.bounds[1]:
        return f"{name} must be in [{spec.bounds[0]}, {spec.bounds[1]}], got {value}"
    return None


def declare(node: Node, configured: Callable[[], bool] = lambda: True) -> None:
    """Declare every parameter (values from --params-file / -p overrides) and install the validator, which
    also refuses the configure-time (read_only) parameters while `configured()`."""
    for spec in SPECS:
        try:
            node.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
            raise ValueError(f"parameter {spec.name}: {exc}") from None

    def on_set(parameters: list[Parameter]) -> SetParametersResult:
        reasons = [r for r in (validate(p.name, p.value) for p in parameters) if r]
        if configured():
            reasons += [f"parameter '{p.name}' is read-only while the node is configured: it takes effect at configure "
                        "(lifecycle cleanup, set it, configure)" for p in parameters
                        if p.name in SPEC_BY_NAME and SPEC_BY_NAME[p.name].read_only]
        return SetParametersResult(successful=not reasons, reason="; ".join(reasons))

    node.add_on_set_parameters_callback(on_set)


@dataclass(frozen=True)
class NodeSettings:
    """Configure-time settings: the estimator's config and how the node subscribes and publishes."""

    estimator: EstimatorConfig
    objects_file: Path
    use_masks: bool
    use_depth: bool
    use_projection_matrix: bool
    sync_slop_s: float
    queue_size: int
    sync_policy: str
    image_cache_s: float
    image_cache_mib: float
    input_reliability: str
    target_frame: str
    tf_timeout_s: float
    tf_cache_s: float
    frame_prefix: str
    instance_timeout_s: float
    instance_match_iou: float
    instance_match_distance: float
    diagnostics_period_s: float
    diagnostics_window_s: float


def read_settings(node: Node) -> NodeSettings:
    """Validate all values (declared ones may come from a params file) and map them to NodeSettings."""
    values = {spec.name: node.get_parameter(spec.name).value for spec in SPECS}
    problems = [r for r in (validate(name, value) for name, value in values.items()) if r]
    if problems:
        raise ValueError("; ".join(problems))
    estimator = EstimatorConfig(
        network=values["network"], weights=Path(values["weights"]) if values["weights"] else None,
        backend=values["backend"], device=values["device"], precision=values["precision"],
        hypotheses=values["hypotheses"], templates_considered=values["templates_considered"], pipeline=values["pipeline"], hypothesis_rule=values["hypothesis_rule"],
        min_inliers=values["min_inliers"], inplane_hypotheses=values["inplane_hypotheses"],
        silhouette_alignment=values["silhouette_alignment"], picopose_mode=values["picopose_mode"],
        **{key: Path(values[key]) if values[key] else None
           for key in ("coarse_weights", "refiner_weights", "selector_weights")},
        refine_iterations=values["refine_iterations"], confidence_model=values["confidence_model"] or None,
        max_batch=values["max_batch"], min_mask_pixels=values["min_mask_pixels"],
        templates_dir=Path(values["templates_dir"]) if values["templates_dir"] else None,
    )
    return NodeSettings(
        estimator=estimator,
        objects_file=Path(values["objects_file"]) if values["objects_file"] else default_objects_file(),
        use_masks=values["use_masks"], use_depth=values["use_depth"],
        use_projection_matrix=values["use_projection_matrix"], sync_slop_s=values["sync_slop_s"],
        queue_size=values["queue_size"], sync_policy=values["sync_policy"], image_cache_s=values["image_cache_s"],
        image_cache_mib=values["image_cache_mib"], input_reliability=values["input_reliability"],
        target_frame=values["target_frame"], tf_timeout_s=values["tf_timeout_s"], tf_cache_s=values["tf_cache_s"],
        frame_prefix=values["frame_prefix"], instance_timeout_s=values["instance_timeout_s"],
        instance_match_iou=values["instance_match_iou"], instance_match_distance=values["instance_match_distance"],
        diagnostics_period_s=values["diagnostics_period_s"],
        diagnostics_window_s=values["diagnostics_window_s"],
    )
