"""The thin ROS 2 shell: conversions, the pose_estimator node, the bop_player node.

The only place that imports rclpy; it converts messages to core types and back.
"""
