"""Will a camera's frames fit the middleware's shared-memory transport? Read from the Fast DDS profile.

Between processes on one machine, Fast DDS (the default RMW) carries a sample through its
shared-memory (SHM) transport when the sample fits the writer's SHM segment; a larger one goes as
UDP fragments (64 KB each: 550 for a 12 MP rgb8 frame), and a best-effort subscription loses a frame
whenever one fragment is lost, which on a busy machine is most frames. The writer's segment also holds
its other samples in flight (a 24 MB mask image beside the 36 MB one). Measured here, 12 MP rgb8 frames
with masks through the node, best effort, one at a time: 16 MiB segment 1 of 6 answered, 64 MiB 1 of 3
to 3 of 3 (fewer under load), 128 MiB 2 of 3 in each of five runs; reliable input: 3 of 3. So
config/fastdds_localhost.xml uses a 128 MiB segment, and the node
warns at the first camera_info whose image would not fit the profile it runs with, when its input
is best effort (`frame_transport_warning`), and counts such frames (cause frame_over_transport).

The profile is the one the node's own process uses; the camera driver's is what decides (its writer
owns the segment), so the check assumes the graph shares one profile, as our launch and Makefile do.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Mapping

FASTDDS_BUILTIN_SHM_SEGMENT_BYTES = 512 * 1024  # Fast DDS's default SHM segment_size
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")  # Kilted+, Jazzy
SMALLEST_COLOUR_PIXEL_BYTES = 3  # rgb8 / bgr8: what camera_info alone lets us assume


@dataclass(frozen=True)
class ShmLimit:
    """The largest sample the SHM transport carries, and where that figure comes from (for messages)."""
    segment_bytes: int
    source: str


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # the tag without its XML namespace


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: ET.Element, name: str) -> str | None:
    found = _children(element, name)
    return found[0].text.strip() if found and found[0].text else None


def fastdds_shm_limit(environ: Mapping[str, str] = os.environ) -> ShmLimit | None:
    """The SHM segment of the default participant profile, or None when the RMW is not Fast DDS."""
    if not environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps"):
        return None
    variable = next((v for v in PROFILE_VARIABLES if environ.get(v)), None)
    builtin = ShmLimit(FASTDDS_BUILTIN_SHM_SEGMENT_BYTES, "Fast DDS's built-in SHM transport (no profile file)")
    if variable is None:
        return builtin
    path = environ[variable]
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return ShmLimit(builtin.segment_bytes, f"Fast DDS's built-in SHM transport ({variable}={path} unreadable: {exc})")
    descriptors = {_text(d, "transport_id"): d for d in root.iter() if _local(d.tag) == "transport_descriptor"}
    participant = next((p for p in root.iter() if _local(p.tag) == "participant"
                        and p.get("is_default_profile", "").lower() == "true"), None)
    if participant is None:
        return ShmLimit(builtin.segment_bytes, f"Fast DDS's built-in SHM transport ({path} has no default participant)")
    used = [t.text.strip() for t in participant.iter() if _local(t.tag) == "transport_id" and t.text]
    segments = [int(_text(descriptors[t], "segment_size") or FASTDDS_BUILTIN_SHM_SEGMENT_BYTES) for t in used
                if t in descriptors and (_text(descriptors[t], "type") or "").upper() == "SHM"]
    builtins = next((e.text.strip().lower() != "false" for e in participant.iter()
                     if _local(e.tag) == "useBuiltinTransports" and e.text), True)
    if builtins:
        segments.append(FASTDDS_BUILTIN_SHM_SEGMENT_BYTES)
    if not segments:
        return ShmLimit(0, f"{variable}={path} (no shared-memory transport: every frame goes as UDP fragments)")
    return ShmLimit(max(segments), f"{variable}={path}")


def frame_transport_warning(width: int, height: int, limit: ShmLimit | None, reliable: bool) -> str | None:
    """Why frames of this size will be lost (best effort, larger than the SHM segment), or None."""
    frame_bytes = int(width) * int(height) * SMALLEST_COLOUR_PIXEL_BYTES
    if limit is None or reliable or frame_bytes <= limit.segment_bytes:
        return None
    return (f"camera_info announces {width}x{height} images: {frame_bytes / 2**20:.1f} MiB per colour frame, more than "
            f"the {limit.segment_bytes / 2**20:.1f} MiB shared-memory segment of {limit.source}; such frames travel as UDP "
            "fragments and best_effort input loses most of them. Set input_reliability: reliable, or give the camera "
            "and this node a profile with a larger segment_size (config/fastdds_localhost.xml: 128 MiB; in Docker also "
            "docker run --shm-size)")
