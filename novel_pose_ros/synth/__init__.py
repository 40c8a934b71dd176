"""Synthetic BOP scenes: objects on a textured support plane or in the air, random cameras,
lights and backgrounds, written as a BOP dataset with CNOS-style detections (`generate_dataset`)."""

from novel_pose_ros.synth.generate import SynthSummary, generate_dataset
from novel_pose_ros.synth.settings import SynthSettings

__all__ = ["SynthSettings", "SynthSummary", "generate_dataset"]
