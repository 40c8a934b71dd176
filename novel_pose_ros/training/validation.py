"""Validation on held-out objects (the manifest's "validation" split, never seen in training).

Two measurements:
  losses  the training losses on a fixed set of validation pairs (same pairs, same stage-3 noise
          every time), in eval mode;
  AR      BOP AR of the checkpoint on a small synthetic BOP dataset of validation objects
          (`novel-pose synth`'s generator, GT detections), through the library functions behind
          `novel-pose eval-run` (the Estimator, results CSV) and `novel-pose eval` (evaluate_results_file).
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.detections import read_detections_json
from novel_pose_ros.bop.evaluate import evaluate_results_file
from novel_pose_ros.bop.results import write_results_csv
from novel_pose_ros.estimation import EstimatorConfig
from novel_pose_ros.estimation.bop_runner import run_on_dataset
from novel_pose_ros.networks.picopose.config import CONFIGS
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render import Renderer
from novel_pose_ros.synth import SynthSettings, generate_dataset
from novel_pose_ros.synth.generate import DETECTIONS_FILE
from novel_pose_ros.training.batches import TrainingBatch, collate
from novel_pose_ros.training.config import TrainConfig
from novel_pose_ros.training.losses import total_loss
from novel_pose_ros.training.model import TrainingModel, noisy_affine
from novel_pose_ros.training.objects import object_group
from novel_pose_ros.training.pairs import PairSampler

DATASET_MARKER = "validation_dataset.json"


def validation_batches(sampler: PairSampler, count: int, batch_size: int, seed: int,
                       collate_fn: Callable[[list], object] = collate) -> list:
    """`count` fixed validation pairs (from `seed`) of any sampler, in batches of `batch_size` made by
    `collate_fn` (PicoPose's TrainingBatch by default)."""
    pairs = sampler.sample(np.random.default_rng([int(seed), 7]), count) if count else []
    return [collate_fn(pairs[i:i + batch_size]) for i in range(0, len(pairs), batch_size)]


@torch.no_grad()
def validation_losses(model: TrainingModel, batches: list[TrainingBatch], config: TrainConfig,
                      device: torch.device) -> dict[str, float]:
    """Mean losses over the batches (eval mode; the model's mode is restored)."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    generator = torch.Generator().manual_seed(config.validation.seed)
    for batch in batches:
        batch = batch.to(device)
        init = noisy_affine(batch.translation, batch.scale, batch.cos_sin, batch.template_centre, config.noise, generator)
        outputs = model(batch.query, batch.template, batch.template_mask, init)
        total, terms = total_loss(outputs, batch, config.loss)
        for key, value in {"val_loss": total, **{f"val_{k}": v for k, v in terms.items()}}.items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(batch)
        count += len(batch)
    model.train(was_training)
    return {k: v / count for k, v in sums.items()} if count else {}


def choose_ar_objects(names: list[str], count: int, seed: int) -> list[str]:
    """`count` validation objects: the named and YCB ones first (most object-like), then random ones."""
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    shuffled.sort(key=lambda n: object_group(n) == "random")
    return shuffled[:count]


def ensure_ar_dataset(folder: Path, library: ObjectLibrary, scenes: int, images_per_scene: int, seed: int,
                      renderer: Renderer) -> Path:
    """Generate the synthetic validation dataset once; regenerate only when its parameters change."""
    params = {"objects": sorted(o.name for o in library), "scenes": scenes, "images_per_scene": images_per_scene,
              "seed": seed, "settings": {k: str(v) for k, v in asdict(SynthSettings()).items()}}
    marker = folder / DATASET_MARKER
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return folder
    generate_dataset(library, folder, scenes, images_per_scene, seed, SynthSettings(), renderer, show_progress=False,
                     overwrite=True)
    marker.write_text(json.dumps(params, indent=1))
    return folder


def eval_run(dataset_dir: Path, weights: Path, network: str, templates_dir: Path, results_csv: Path, backend: str,
             device: str, hypotheses: int, template_level: int, renderer: Renderer | None = None) -> float:
    """What `novel-pose eval-run` does: estimate every target image's GT detections, write a BOP
    results CSV. Returns the mean seconds per image."""
    detections, _ = read_detections_json(dataset_dir / DETECTIONS_FILE)
    config = EstimatorConfig(network=network if network in CONFIGS else "small", weights=weights, backend=backend,
                             device=device, hypotheses=hypotheses, templates_dir=templates_dir,
                             template_level=template_level)
    summary = run_on_dataset(BopDataset(dataset_dir, "test"), detections, config, renderer=renderer)
    write_results_csv(results_csv, summary.results)
    return summary.mean_seconds_per_image


def validation_ar(dataset_dir: Path, weights: Path, config: TrainConfig, work_dir: Path, renderer: Renderer,
                  device: str) -> dict[str, float]:
    """BOP AR of `weights` on the validation dataset → {"ar", "ar_vsd", "ar_mssd", "ar_mspd", "s_per_image"}."""
    results_csv = work_dir / f"results_{Path(weights).stem}.csv"
    network = config.network if isinstance(config.network, str) else config.network_config().name
    s_per_image = eval_run(dataset_dir, weights, network, work_dir / "templates", results_csv, config.validation.backend,
                           device, config.validation.hypotheses, config.validation.template_level, renderer)
    report = evaluate_results_file(BopDataset(dataset_dir, "test"), results_csv, renderer)
    row = report.overall
    values = {"ar": row.ar, "ar_vsd": row.ar_vsd, "ar_mssd": row.ar_mssd, "ar_mspd": row.ar_mspd,
              "s_per_image": s_per_image}
    return {k: float(v) for k, v in values.items() if v is not None}
