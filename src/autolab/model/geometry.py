"""Planar-yaw poses in the workcell: composing frames and converting to quaternions.

Workcell locations are upright (labware sits flat), so a pose is x, y, z and a
yaw about z. Full 3-D orientations appear only at the edges (ROS messages,
MuJoCo quaternions), converted here in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Pose:
    """x, y, z in metres and yaw in radians about +z."""

    x: float
    y: float
    z: float
    yaw: float = 0.0

    def compose(self, other: Pose) -> Pose:
        """`other` (given in this pose's frame) expressed in this pose's parent frame."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return Pose(
            self.x + c * other.x - s * other.y,
            self.y + s * other.x + c * other.y,
            self.z + other.z,
            wrap_angle(self.yaw + other.yaw),
        )

    def inverse(self) -> Pose:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return Pose(-(c * self.x + s * self.y), -(-s * self.x + c * self.y), -self.z, wrap_angle(-self.yaw))

    def distance(self, other: Pose) -> float:
        return math.dist((self.x, self.y, self.z), (other.x, other.y, other.z))

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.z, self.yaw)

    def quaternion_wxyz(self) -> tuple[float, float, float, float]:
        return yaw_to_quat_wxyz(self.yaw)


def wrap_angle(a: float) -> float:
    """An angle in (-pi, pi]."""
    a = math.fmod(a + math.pi, 2 * math.pi)
    if a <= 0:
        a += 2 * math.pi
    return a - math.pi


def yaw_to_quat_wxyz(yaw: float) -> tuple[float, float, float, float]:
    return (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))


def rpy_to_quat_wxyz(roll: float, pitch: float, yaw: float) -> tuple[float, float, float, float]:
    """URDF's fixed-axis roll-pitch-yaw (R = Rz(yaw) Ry(pitch) Rx(roll)) as a w, x, y, z quaternion."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (
        cr * cp * cy + sr * sp * sy,
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
    )


def quat_wxyz_to_yaw(w: float, x: float, y: float, z: float) -> float:
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def tilt_of_quat_wxyz(w: float, x: float, y: float, z: float) -> float:
    """Angle in radians between the body's z axis and world +z (0 = upright)."""
    zz = 1 - 2 * (x * x + y * y)
    return math.acos(max(-1.0, min(1.0, zz)))
