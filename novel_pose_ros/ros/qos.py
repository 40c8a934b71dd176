"""QoS profiles of the package, named by use.

- `sensor_qos`: camera-like streams (keep last `depth`, volatile); best effort by default, as
  camera drivers publish. A best-effort subscription matches reliable and best-effort
  publishers; a reliable one matches only reliable publishers. Nodes expose the reliability as
  a parameter ("best_effort" | "reliable") and pass it here.
- `latched_qos`: state that a late subscriber must still get (object symmetries, /tf_static):
  reliable, transient local, keep last 1.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITIES = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def reliability_policy(name: str) -> ReliabilityPolicy:
    """The policy for a parameter value "best_effort" | "reliable"; ValueError otherwise."""
    try:
        return RELIABILITIES[name]
    except KeyError:
        raise ValueError(f"reliability must be one of {', '.join(RELIABILITIES)}, got '{name}'") from None


def sensor_qos(depth: int = 5, reliability: str = "best_effort") -> QoSProfile:
    """Keep last `depth`, volatile, best effort unless `reliability` says "reliable"."""
    if int(depth) < 1:
        raise ValueError(f"depth must be ≥ 1, got {depth}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), reliability=reliability_policy(reliability),
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> QoSProfile:
    """Reliable, transient local, keep last 1: late subscribers receive the last message."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
