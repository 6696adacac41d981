"""The QoS profiles of autolab, named once so every publisher and subscriber agree.

State topics are latched (transient local, depth 1) so late joiners get the
current state; streams of samples are best-effort; commands are reliable.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

#: Device state, /safety/state, /robot_description, queue and tree snapshots.
LATCHED = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

#: Joint states, /clock, presence sensors: the newest sample matters.
STREAM = QoSProfile(
    depth=10,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

#: Camera images and other bulky sensor data.
SENSOR = qos_profile_sensor_data

#: Commands (teleop twists, jogs, setpoints): reliable, shallow.
COMMAND = QoSProfile(
    depth=5,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

#: Event documents from the recorder: reliable and deep so none is dropped.
EVENTS = QoSProfile(
    depth=1000,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
