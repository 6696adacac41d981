"""Named errors of the devices layer. Nodes map them to action error codes.

Two families: communication (the bytes did not get through: silence, garbage,
bad checksum, unplugged) and operation (the device understood and said no, or
the request was invalid before anything was sent).
"""

from __future__ import annotations

from typing import Any


class DeviceError(RuntimeError):
    """Base of every error raised by a device driver, frontend or emulator.

    `partial` is set (in-process only; a serial link carries just the message) when an operation
    failed part-way after some of its effect really happened: the `OperationResult` of what it did,
    so the node can record it like a result. None when nothing happened or nothing is known.
    """

    partial: Any = None


# --- communication ----------------------------------------------------------------
class CommunicationError(DeviceError):
    """The exchange with the device failed; the command may or may not have run."""


class DeviceTimeout(CommunicationError):
    """The device stayed silent past the response timeout (after retries)."""


class FramingError(CommunicationError):
    """Bytes that are not a frame of the protocol: garbage, truncated or over-long lines."""


class ChecksumError(FramingError):
    """A frame whose checksum does not match its body."""


class DeviceDisconnected(CommunicationError):
    """The port vanished (unplugged) or cannot be opened."""


# --- operation ----------------------------------------------------------------------
class OperationRejected(DeviceError):
    """A request refused before anything moved."""


class InvalidOperation(OperationRejected):
    """The operation is not a capability of this instrument."""


class InvalidParameters(OperationRejected):
    """A parameter is missing, of the wrong type or out of range; the message names it."""


class NotReady(OperationRejected):
    """The instrument cannot start now: door open, nest empty or occupied, busy."""


class CommandRefused(DeviceError):
    """The device answered a command with an error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"device refused command: {code}: {message}")
        self.code = code
        self.device_message = message


class DeviceFault(DeviceError):
    """The device reported a fault while running an operation."""


class LiquidHandlingError(DeviceError):
    """A transfer would overflow or underflow a well.

    Refused before anything moved, or (the wells changed under a running operation) stopped
    part-way: then the message names the wells already done, and `partial` holds them.
    """


# --- motion (arm kinematics, planning, trajectories, conveyor) ------------------
class MotionError(DeviceError):
    """Base of arm and conveyor motion errors; `code` names the action error code it maps to."""

    code = "BACKEND_FAILURE"


class RobotModelError(MotionError):
    """The parsed robot cannot be used for planning (e.g. no chain between the links asked for).

    A URDF that cannot be read at all is an `autolab.model.errors.UrdfError`, raised on load.
    """

    code = "INVALID_GOAL"


class InvalidGoal(MotionError):
    """A goal is malformed: wrong joint names or count, NaN, a scale out of range."""

    code = "INVALID_GOAL"


class UnknownPose(MotionError):
    """A named pose that the description does not define."""

    code = "UNKNOWN_POSE"


class OutOfLimits(MotionError):
    """A joint goal outside the joint limits."""

    code = "OUT_OF_LIMITS"


class NoIKSolution(MotionError):
    """No joint configuration within limits (and free of collision) reaches the tool pose."""

    code = "NO_IK_SOLUTION"


class CollisionError(MotionError):
    """A goal configuration, or a sample of the path to it, collides with the cell."""

    code = "COLLISION"

    def __init__(self, message: str, pair: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.pair = pair


class UnknownStation(MotionError):
    """A conveyor station that the description does not define."""

    code = "UNKNOWN_STATION"


class ConveyorBlocked(MotionError):
    """The conveyor cannot make the move without pushing one carrier into another."""

    code = "BLOCKED"


class VisionError(DeviceError):
    """A camera model, image or marker setting the detector cannot use; the message says what is wrong."""
