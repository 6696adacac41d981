"""Run ROS 2 YAML launch files without the ROS 2 launch packages.

`autolab launch` and `autolab up` read the same `launch/*.launch.yaml` files that
`ros2 launch autolab <file>` runs on a system ROS 2. The supported subset is
documented in docs/launch.md; anything else is refused by name with file:line.
This package is plain Python (stdlib + PyYAML): it never imports rclpy.
"""

from autolab.launcher.errors import (
    ExecutableNotFound,
    LaunchArgumentError,
    LaunchError,
    LaunchFileError,
    SubstitutionError,
    UnsupportedConstruct,
)
from autolab.launcher.loader import LaunchPlan, NodeSpec, ProcessSpec, load_launch_file

__all__ = [
    "ExecutableNotFound",
    "LaunchArgumentError",
    "LaunchError",
    "LaunchFileError",
    "LaunchPlan",
    "NodeSpec",
    "ProcessSpec",
    "SubstitutionError",
    "UnsupportedConstruct",
    "load_launch_file",
]
