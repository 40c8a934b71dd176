"""ament_python package that is also pip-installable.

Python dependencies are pinned in requirements.txt (installed by `make venv`);
on a robot they come from apt (package.xml), so install_requires stays minimal.
"""
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "novel_pose_ros"
ROOT = Path(__file__).resolve().parent


def share_files(folder: str) -> list[tuple[str, list[str]]]:
    """(install dir, files) pairs that mirror `folder` under share/<package>."""
    entries: dict[str, list[str]] = {}
    for path in sorted((ROOT / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(ROOT)
            entries.setdefault(f"share/{PACKAGE}/{rel.parent}", []).append(str(rel))
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *share_files("config"),
        *share_files("launch"),
        *share_files("meshes"),
        *share_files("models"),
        *share_files("rviz"),
    ],
    install_requires=["setuptools"],
    python_requires=">=3.10",
    zip_safe=False,
    description="6D pose estimation of novel objects (PicoPose / Co-op) as a ROS 2 node",
    license="MIT",
    entry_points={
        "console_scripts": [
            "novel-pose = novel_pose_ros.cli:main",
            "pose_estimator_node = novel_pose_ros.ros.pose_estimator_node:main",
            "bop_player_node = novel_pose_ros.ros.bop_player_node:main",
        ],
    },
)
