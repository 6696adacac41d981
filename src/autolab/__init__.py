"""autolab: laboratory workcell control on ROS 2.

Layers (imports point down only): model -> devices -> sim -> executive -> data
-> nodes -> gateway -> cli. Only `nodes`, `gateway` and `cli` import rclpy.
"""

__version__ = "0.1.0"
