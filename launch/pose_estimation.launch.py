"""pose_estimator (+ optionally a bop_player as the camera and RViz).

    ros2 launch novel_pose_ros pose_estimation.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info detections:=/cnos/detections use_rviz:=true
    ros2 launch novel_pose_ros pose_estimation.launch.py use_bop_player:=true dataset:=/data/ycbv use_rviz:=true

Thin on purpose: everything else is in config/*.yaml. The bop_player gets the same remaps as the
estimator, so the two connect.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "novel_pose_ros"
TOPICS = {  # the nodes' input names -> default topic on a RealSense-style camera
    "image": "/camera/color/image_raw",
    "camera_info": "/camera/color/camera_info",
    "detections": "/detections",
    "detection_masks": "/detection_masks",
    "depth": "/camera/aligned_depth_to_color/image_raw",
}


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [DeclareLaunchArgument(name, default_value=topic, description=f"topic for the '{name}' input")
                 for name, topic in TOPICS.items()]
    arguments += [
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([share, "config", "pose_estimator.yaml"]),
                              description="pose_estimator parameters file"),
        DeclareLaunchArgument("use_rviz", default_value="false", description="start RViz with rviz/novel_pose.rviz"),
        DeclareLaunchArgument("use_bop_player", default_value="false", description="play a BOP dataset as the camera"),
        DeclareLaunchArgument("dataset", default_value="", description="BOP dataset root for the bop_player"),
        DeclareLaunchArgument("bop_player_config", default_value=PathJoinSubstitution([share, "config", "bop_player.yaml"]),
                              description="bop_player parameters file"),
    ]
    remappings = [(name, LaunchConfiguration(name)) for name in TOPICS]
    return LaunchDescription([
        *arguments,
        Node(package=PACKAGE, executable="pose_estimator_node", name="pose_estimator", output="screen",
             parameters=[LaunchConfiguration("config")], remappings=remappings),
        Node(package=PACKAGE, executable="bop_player_node", name="bop_player", output="screen",
             parameters=[LaunchConfiguration("bop_player_config"), {"dataset": LaunchConfiguration("dataset")}],
             remappings=remappings, condition=IfCondition(LaunchConfiguration("use_bop_player"))),
        Node(package="rviz2", executable="rviz2", name="rviz2", output="log",
             arguments=["-d", PathJoinSubstitution([share, "rviz", "novel_pose.rviz"])],
             condition=IfCondition(LaunchConfiguration("use_rviz"))),
    ])
