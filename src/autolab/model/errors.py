"""Named exceptions of the model layer (no rclpy).

Each layer raises its own exceptions from one module so the edges (nodes, CLI,
gateway) can turn them into error codes and sentences a person can act on.
Other engineers append their model-layer exceptions here.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base of every model-layer error."""


class DescriptionError(ModelError):
    """The workcell description is invalid: names the file, the key and the problem.

    `line` is the 1-based line in `file` where the offending key or value is,
    when it is known, so an editor can jump to it.
    """

    def __init__(self, file: str, key: str, problem: str, line: int | None = None) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        self.line = line
        where = f"{self.file}:{line}" if line else self.file
        super().__init__(f"{where}: {key or '<top level>'}: {problem}")


# --- the arm's URDF (autolab.model.urdf) ------------------------------------------
class UrdfError(DescriptionError):
    """A URDF autolab cannot read: names the file, the element (`joint 'elbow_joint'`) and the problem.

    A DescriptionError because the URDF is part of the cell's description: every edge that reports
    a bad description reports a bad URDF the same way. `element` is empty for file-level problems.
    """

    def __init__(self, file: str, element: str, problem: str, line: int | None = None) -> None:
        super().__init__(file, element, problem, line)
        self.element = element
        where = f"{self.file}:{line}" if line else self.file
        self.args = (f"{where}: {element}: {problem}" if element else f"{where}: {problem}",)


# --- tracked inventory (autolab.model.inventory) -------------------------------
class InventoryError(ModelError):
    """A move the tracked inventory refuses; `code` names the Transfer error it maps to."""

    code = "INVALID_GOAL"


class UnknownLocation(InventoryError):
    code = "UNKNOWN_LOCATION"


class UnknownLabware(InventoryError):
    code = "WRONG_LABWARE"


class SourceEmpty(InventoryError):
    code = "SOURCE_EMPTY"


class WrongLabware(InventoryError):
    code = "WRONG_LABWARE"


class DestinationOccupied(InventoryError):
    code = "DESTINATION_OCCUPIED"


class NotAccepted(InventoryError):
    """The destination does not accept this labware type."""

    code = "INVALID_GOAL"


# --- liquids in wells (autolab.model.labware) -------------------------------------
class LabwareError(ModelError, ValueError):
    """Base of the liquid-tracking errors: nothing was changed when one is raised."""


class WellNameError(LabwareError):
    """A well name that does not exist on the labware (e.g. "I1" on a 96-well plate)."""


class VolumeError(LabwareError):
    """A negative, non-finite or otherwise unusable volume or concentration."""


class WellOverflow(LabwareError):
    """A well would hold more than its capacity."""


class WellUnderflow(LabwareError):
    """A well holds less liquid than asked for."""


class UnknownReagent(LabwareError):
    """A reagent name that is neither known nor given with an explicit composition."""


class ProtocolError(ModelError, ValueError):
    """A protocol is malformed; the message is `file:line:column: reason`."""

    def __init__(self, reason: str, file: str = "<protocol>", line: int = 0, column: int = 0) -> None:
        self.reason, self.file, self.line, self.column = reason, file, line, column
        super().__init__(f"{file}:{line}:{column}: {reason}")


class ParameterError(ModelError, ValueError):
    """A protocol parameter value is missing, mistyped or out of range."""
