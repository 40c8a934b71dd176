"""pose_estimator (+ optionally a bop_player as the camera, and RViz).

    ros2 launch novel_pose_ros pose_estimation.launch.py image:=/camera/camera/color/image_raw \
        camera_info:=/camera/camera/color/camera_info detections:=/cnos/detections use_rviz:=true
    ros2 launch novel_pose_ros pose_estimation.launch.py use_bop_player:=true dataset:=/data/synthetic
    ros2 launch novel_pose_ros pose_estimation.launch.py namespace:=cam1 objects_file:=/data/my_objects.yaml

Thin on purpose: the nodes' parameters are in config/*.yaml; the arguments here are what ties the
nodes together (topics, objects, namespace) or is chosen per run (pipeline, dataset). The bop_player
gets the same remaps as the estimator, so the two connect, and the same objects file, so its
detections' class ids are the estimator's object names. Default topics are relative: with
`namespace:=cam1` they become /cam1/camera/..., and both nodes' outputs move with them.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.substitutions import FindPackageShare

PACKAGE = "novel_pose_ros"
TOPICS = {  # the nodes' input names -> default topic (RealSense-style names, relative to `namespace`)
    "image": "camera/color/image_raw",
    "camera_info": "camera/color/camera_info",
    "detections": "detections",
    "detection_masks": "detection_masks",
    "depth": "camera/aligned_depth_to_color/image_raw",
}


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [DeclareLaunchArgument(name, default_value=topic, description=f"topic for the '{name}' input")
                 for name, topic in TOPICS.items()]
    arguments += [
        DeclareLaunchArgument("namespace", default_value="", description="ROS namespace of the nodes (one per camera)"),
        DeclareLaunchArgument("frame_prefix", default_value="",
                              description="prefix of the instance TF frames, e.g. cam1/ beside namespace:=cam1"),
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([share, "config", "pose_estimator.yaml"]),
                              description="pose_estimator parameters file"),
        DeclareLaunchArgument("objects_file", default_value=PathJoinSubstitution([share, "config", "objects.yaml"]),
                              description="objects YAML (meshes, ids, names) of the estimator and the bop_player"),
        DeclareLaunchArgument("pipeline", default_value="picopose",
                              description="picopose | picopose+refine | coop | coop+refine | coop+refine+select"),
        DeclareLaunchArgument("use_rviz", default_value="false", description="start RViz with rviz/novel_pose.rviz"),
        DeclareLaunchArgument("use_bop_player", default_value="false", description="play a BOP dataset as the camera"),
        DeclareLaunchArgument("dataset", default_value="", description="BOP dataset root for the bop_player"),
        DeclareLaunchArgument("dataset_objects_file", default_value=LaunchConfiguration("objects_file"),
                              description="objects YAML naming the dataset's BOP ids (default: objects_file)"),
        DeclareLaunchArgument("bop_player_config", default_value=PathJoinSubstitution([share, "config", "bop_player.yaml"]),
                              description="bop_player parameters file"),
    ]
    remappings = [(name, LaunchConfiguration(name)) for name in TOPICS]
    estimator = Node(package=PACKAGE, executable="pose_estimator_node", name="pose_estimator", output="screen",
                     parameters=[LaunchConfiguration("config"), {"objects_file": LaunchConfiguration("objects_file"),
                                                                  "pipeline": LaunchConfiguration("pipeline"),
                                                                  "frame_prefix": LaunchConfiguration("frame_prefix")}],
                     remappings=remappings)
    player = Node(package=PACKAGE, executable="bop_player_node", name="bop_player", output="screen",
                  parameters=[LaunchConfiguration("bop_player_config"),
                              {"dataset": LaunchConfiguration("dataset"),
                               "objects_file": LaunchConfiguration("dataset_objects_file")}],
                  remappings=remappings, condition=IfCondition(LaunchConfiguration("use_bop_player")))
    return LaunchDescription([
        *arguments,
        GroupAction([PushRosNamespace(LaunchConfiguration("namespace")), estimator, player]),
        Node(package="rviz2", executable="rviz2", name="rviz2", output="log",
             arguments=["-d", PathJoinSubstitution([share, "rviz", "novel_pose.rviz"])],
             condition=IfCondition(LaunchConfiguration("use_rviz"))),
    ])
