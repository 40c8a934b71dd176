"""`python -m novel_pose_ros.cli`."""
import sys

from novel_pose_ros.cli import main

sys.exit(main())
