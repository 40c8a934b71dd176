"""The ROS 2 user tools in tests: colcon into a temporary ament prefix, that prefix's environment, the real
`ros2` command (launch, topic, param, lifecycle) as subprocesses.

Where they come from: a system ROS 2 (robots, ROS CI images) or `make venv-ros-tools`, which installs the
vendored Jazzy sources of ../shared/vendor into the venv. Without either, `missing_ros_tools()` says why and
the tests that need them skip with that reason.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from helpers import REPO_ROOT

PACKAGE = "novel_pose_ros"
FASTDDS_PROFILE = REPO_ROOT / "config" / "fastdds_localhost.xml"
# `ros2 ...` would otherwise start a daemon that outlives the test (and keeps the domain busy)
NO_DAEMON = "--no-daemon"


def executable(name: str) -> str | None:
    """`name` from this venv's bin/ (make venv-ros-tools), else from PATH (a sourced system ROS 2)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else shutil.which(name)


def missing_ros_tools() -> str | None:
    """Why the launch tests cannot run here, or None when ros2 launch, the ros2 CLI and colcon are installed."""
    missing = [m for m in ("launch", "launch_ros", "ros2cli", "ros2launch", "composition_interfaces")
               if importlib.util.find_spec(m) is None]
    missing += [f"the {e} command" for e in ("ros2", "colcon") if executable(e) is None]
    if not missing:
        return None
    return (f"needs the ROS 2 tools ({', '.join(missing)} not found): run `make venv-ros-tools` (installs them from "
            "../shared/vendor/ros2_jazzy_python, absent on this machine?) or source a ROS 2 installation")


def base_env() -> dict[str, str]:
    """This process's environment plus what the Makefile exports for every test run (loopback DDS profile, the
    venv as an ament prefix), for the ros2/colcon subprocesses."""
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE))
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE))
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if sys.prefix not in prefixes:  # the ROS wheels' share/ (rclpy, messages, launch_ros) is in the venv
        prefixes.append(sys.prefix)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(prefixes)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def colcon_build(workspace: Path, timeout_s: float = 300.0) -> Path:
    """`colcon build` of this package (the source tree, untouched) into workspace/install; returns that prefix.

    Raises RuntimeError with colcon's output when the build fails.
    """
    workspace.mkdir(parents=True, exist_ok=True)
    env = base_env()
    env["COLCON_HOME"] = str(workspace / "colcon_home")  # no user defaults (~/.colcon) in the test
    command = [executable("colcon"), "--log-base", str(workspace / "log"), "build", "--paths", str(REPO_ROOT),
               "--build-base", str(workspace / "build"), "--install-base", str(workspace / "install"),
               "--event-handlers", "console_direct-"]
    result = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0:
        raise RuntimeError(f"colcon build failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return workspace / "install"


def sourced_env(install: Path) -> dict[str, str]:
    """The environment after `source install/setup.bash` (colcon's own set-up: AMENT_PREFIX_PATH, PYTHONPATH, PATH)."""
    script = install / "setup.bash"
    if not script.is_file():
        raise FileNotFoundError(f"{script}: colcon wrote no setup.bash (is colcon-bash installed?)")
    out = subprocess.run(["bash", "-c", 'source "$1" && env -0', "bash", str(script)], env=base_env(),
                         capture_output=True, check=True, timeout=60).stdout
    return dict(entry.split("=", 1) for entry in out.decode().split("\0") if "=" in entry)


def ros2(env: dict[str, str], *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """`ros2 <args>` to completion: (returncode, stdout + stderr as .stdout)."""
    return subprocess.run([executable("ros2"), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout_s)


def start_launch(env: dict[str, str], args: list[str], log: Path) -> subprocess.Popen:
    """`ros2 launch <args>` in its own process group, output to `log` (a pipe nobody reads would block it).

    SIGINT is reset to its default in the child: a shell without job control starts background commands with
    SIGINT ignored, and ros2 launch then neither stops on it nor passes it to the nodes.
    """
    with log.open("w") as out:
        return subprocess.Popen([executable("ros2"), "launch", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def stop_launch(proc: subprocess.Popen, timeout_s: float = 30.0) -> tuple[int, list[str]]:
    """Ctrl-C a `start_launch` process as a user would: (its exit code, what had to be killed after it).

    Whatever of its process group outlives the launch (nodes it failed to stop) is killed, and named.
    """
    killed = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            killed.append(f"ros2 launch (pid {proc.pid}, no exit {timeout_s:.0f} s after SIGINT)")
            proc.kill()
            proc.wait()
    for pid in _group_members(proc.pid):
        killed.append(f"pid {pid}: {(Path('/proc') / str(pid) / 'cmdline').read_bytes()[:200]!r}")
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is empty: every node ended with the launch
        pass
    return proc.returncode, killed


def _group_members(pgid: int) -> list[int]:
    members = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.getpgid(int(proc.name)) == pgid:
                members.append(int(proc.name))
        except OSError:
            continue
    return members


def daemons_of_domain(domain_id: str) -> list[int]:
    """pids of ros2 daemons serving `domain_id` (a test that used --no-daemon everywhere leaves none)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0") if proc.name.isdigit() else []
        except OSError:  # the process ended meanwhile
            continue
        if b"ros2-daemon" in cmdline and b"--ros-domain-id" in cmdline:
            if cmdline[cmdline.index(b"--ros-domain-id") + 1:][:1] == [domain_id.encode()]:
                pids.append(int(proc.name))
    return pids
