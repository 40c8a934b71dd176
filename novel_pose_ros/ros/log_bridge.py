"""The library's Python `logging` records in the node's ROS log.

The core (novel_pose_ros.*) logs with the standard `logging` module, which rclpy does not see: without
this bridge a node would drop what the library says (untrained weights, a first-use ONNX export or
template build, a back-end fallback). Records of the `novel_pose_ros` loggers go to the node's rclpy
logger (stderr / the ROS log files, /rosout), with their level and the library logger's name.
"""
from __future__ import annotations

import logging

LIBRARY_LOGGER = "novel_pose_ros"


class RclpyLogHandler(logging.Handler):
    """Forwards records to an rclpy logger: DEBUG/INFO/WARNING/ERROR/CRITICAL -> debug/info/warning/error/fatal."""

    def __init__(self, ros_logger) -> None:
        super().__init__()
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.name}: {self.format(record)}"
            if record.levelno >= logging.CRITICAL:
                self.ros_logger.fatal(text)
            elif record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            elif record.levelno >= logging.INFO:
                self.ros_logger.info(text)
            else:
                self.ros_logger.debug(text)
        except Exception:  # a logging failure must never take the node down
            self.handleError(record)


def bridge_library_logs(ros_logger, level: int = logging.INFO) -> RclpyLogHandler:
    """Attach a RclpyLogHandler to the library's root logger (returned, so it can be removed)."""
    handler = RclpyLogHandler(ros_logger)
    handler.setFormatter(logging.Formatter("%(message)s"))
    library = logging.getLogger(LIBRARY_LOGGER)
    library.addHandler(handler)
    library.setLevel(level)
    library.propagate = False  # the ROS log is where these go; no second copy through the root logger
    return handler
