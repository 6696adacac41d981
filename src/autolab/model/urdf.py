"""The arm's URDF as plain data: links with primitive geometry, joints, limits, dynamics, mimic.

This is the one reader of `urdf/arm.urdf`. The workcell loader checks the
description against it, the MuJoCo world is generated from it and the planner's
kinematics (`autolab.devices.kinematics.RobotModel`) are built from it, so no
two parts of the stack can read the file differently (defaults, mimic joints,
limits, collision shapes).

It reads the subset of URDF the cell uses and refuses the rest by name: mesh
geometry, floating and planar joints, off-diagonal inertia. A collision shape
that silently vanished would make both the simulation and the collision checker
lie. Defaults follow the URDF specification: a missing origin is the identity,
a missing axis is x; a limit that is not given is unbounded (infinite).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from autolab.model.errors import UrdfError

Vec3 = tuple[float, float, float]
JOINT_TYPES = ("revolute", "continuous", "prismatic", "fixed")


@dataclass(frozen=True)
class Shape:
    """A primitive in its link's frame: box (full extents), cylinder (radius, length; axis z), sphere (radius,)."""

    kind: str  # box | cylinder | sphere
    size: tuple[float, ...]
    xyz: Vec3 = (0.0, 0.0, 0.0)
    rpy: Vec3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Inertial:
    mass: float
    xyz: Vec3
    rpy: Vec3
    diag: Vec3  # ixx, iyy, izz (off-diagonal terms are refused on load)


@dataclass(frozen=True)
class Link:
    name: str
    inertial: Inertial | None
    collisions: tuple[Shape, ...]
    visuals: tuple[Shape, ...]


@dataclass(frozen=True)
class Mimic:
    """This joint's value is `multiplier * value(joint) + offset`."""

    joint: str
    multiplier: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class Joint:
    name: str
    type: str  # revolute | continuous | prismatic | fixed
    parent: str
    child: str
    xyz: Vec3
    rpy: Vec3
    axis: Vec3  # unit length on movable joints
    lower: float = -math.inf  # continuous joints (and fixed ones) are unbounded
    upper: float = math.inf
    velocity: float = math.inf
    effort: float = math.inf
    damping: float = 0.0
    friction: float = 0.0
    mimic: Mimic | None = None

    @property
    def movable(self) -> bool:
        """Moves at all (mimic joints included); `driven` says whether it has a value of its own."""
        return self.type != "fixed"

    @property
    def driven(self) -> bool:
        """A movable joint that is not a mimic of another: a degree of freedom of the robot."""
        return self.movable and self.mimic is None


@dataclass(frozen=True)
class Robot:
    name: str
    links: dict[str, Link]
    joints: dict[str, Joint]  # in document order
    root: str
    file: str = "<urdf>"  # where it was read from, for messages

    def children(self, link: str) -> list[Joint]:
        return [j for j in self.joints.values() if j.parent == link]

    def parent_joint(self, link: str) -> Joint | None:
        return next((j for j in self.joints.values() if j.child == link), None)

    def movable_joints(self) -> list[Joint]:
        """Movable joints (mimic joints included) in depth-first order from the root."""
        out: list[Joint] = []

        def walk(link: str) -> None:
            for j in self.children(link):
                if j.movable:
                    out.append(j)
                walk(j.child)

        walk(self.root)
        return out


def load_urdf(path: str | Path) -> Robot:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise UrdfError(str(p), "", f"cannot read: {exc.strerror or exc}") from None
    return parse_urdf(text, str(p))


def parse_urdf(text: str, file: str = "<urdf>") -> Robot:
    """The robot described by URDF `text`; `file` names it in errors."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise UrdfError(file, "", f"not valid XML: {exc}", line=exc.position[0]) from None
    if root.tag != "robot":
        raise UrdfError(file, "", f"the root element is <{root.tag}>, expected <robot>")
    r = _Reader(file)
    links: dict[str, Link] = {}
    for el in root.findall("link"):
        link = r.link(el)
        if link.name in links:
            raise UrdfError(file, f"link {link.name!r}", "is defined twice")
        links[link.name] = link
    joints: dict[str, Joint] = {}
    for el in root.findall("joint"):
        joint = r.joint(el, links)
        if joint.name in joints:
            raise UrdfError(file, f"joint {joint.name!r}", "is defined twice")
        joints[joint.name] = joint
    for j in joints.values():
        if j.mimic is not None and j.mimic.joint not in joints:
            raise UrdfError(file, f"joint {j.name!r}", f"mimics unknown joint {j.mimic.joint!r}")
    parents: dict[str, str] = {}
    for j in joints.values():
        if j.child in parents:
            raise UrdfError(file, f"link {j.child!r}", f"is the child of two joints ({parents[j.child]}, {j.name})")
        parents[j.child] = j.name
    roots = [n for n in links if n not in parents]
    if len(roots) != 1:
        raise UrdfError(file, "robot", f"expected one root link, found {roots or 'none'}")
    robot = Robot(name=root.get("name", "robot"), links=links, joints=joints, root=roots[0], file=file)
    reached = {robot.root}
    frontier = [robot.root]
    while frontier:
        for j in robot.children(frontier.pop()):
            reached.add(j.child)
            frontier.append(j.child)
    if unreached := [n for n in links if n not in reached]:
        raise UrdfError(file, "robot", f"links {unreached} are not connected to the root {robot.root!r} (a cycle)")
    return robot


class _Reader:
    """Element readers that name the file and the element in every error."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, element: str, problem: str) -> UrdfError:
        return UrdfError(self.file, element, problem)

    def link(self, el: ET.Element) -> Link:
        name = self.attr(el, "name", "link")
        where = f"link {name!r}"
        return Link(
            name=name,
            inertial=self.inertial(el.find("inertial"), f"{where} inertial"),
            collisions=tuple(self.shape(c, f"{where} collision {i}") for i, c in enumerate(el.findall("collision"))),
            visuals=tuple(self.shape(c, f"{where} visual {i}") for i, c in enumerate(el.findall("visual"))),
        )

    def joint(self, el: ET.Element, links: dict[str, Link]) -> Joint:
        name = self.attr(el, "name", "joint")
        where = f"joint {name!r}"
        jtype = self.attr(el, "type", where)
        if jtype not in JOINT_TYPES:
            raise self.fail(where, f"joint type {jtype!r} is not supported ({', '.join(JOINT_TYPES)})")
        parent_el, child_el = el.find("parent"), el.find("child")
        if parent_el is None or child_el is None:
            raise self.fail(where, "needs <parent link=...> and <child link=...>")
        parent, child = self.attr(parent_el, "link", where), self.attr(child_el, "link", where)
        for ln in (parent, child):
            if ln not in links:
                raise self.fail(where, f"link {ln!r} is not defined")
        xyz, rpy = self.origin(el.find("origin"), where)
        axis_el = el.find("axis")
        axis = self.vec(axis_el, "xyz", where, (1.0, 0.0, 0.0)) if axis_el is not None else (1.0, 0.0, 0.0)
        if jtype != "fixed":
            norm = math.sqrt(sum(a * a for a in axis))
            if norm < 1e-9:
                raise self.fail(where, "axis has zero length")
            axis = (axis[0] / norm, axis[1] / norm, axis[2] / norm)
        lim, dyn = el.find("limit"), el.find("dynamics")
        lower, upper = -math.inf, math.inf
        if jtype in ("revolute", "prismatic"):
            if lim is None:
                raise self.fail(where, f"a {jtype} joint needs <limit lower upper velocity effort>")
            lower, upper = self.num(lim, "lower", 0.0, where), self.num(lim, "upper", 0.0, where)
            if lower > upper:
                raise self.fail(where, f"limit lower {lower:g} is above upper {upper:g}")
        return Joint(
            name=name,
            type=jtype,
            parent=parent,
            child=child,
            xyz=xyz,
            rpy=rpy,
            axis=axis,
            lower=lower,
            upper=upper,
            velocity=self.num(lim, "velocity", math.inf, where),
            effort=self.num(lim, "effort", math.inf, where),
            damping=self.num(dyn, "damping", 0.0, where),
            friction=self.num(dyn, "friction", 0.0, where),
            mimic=self.mimic(el.find("mimic"), where),
        )

    def mimic(self, el: ET.Element | None, where: str) -> Mimic | None:
        if el is None:
            return None
        return Mimic(
            self.attr(el, "joint", where), self.num(el, "multiplier", 1.0, where), self.num(el, "offset", 0.0, where)
        )

    def shape(self, el: ET.Element, where: str) -> Shape:
        xyz, rpy = self.origin(el.find("origin"), where)
        geo = el.find("geometry")
        if geo is None or len(geo) != 1:
            raise self.fail(where, "needs exactly one <geometry>")
        g = geo[0]
        if g.tag == "box":
            size: tuple[float, ...] = self.vec(g, "size", where)
        elif g.tag == "cylinder":
            size = (self.num(g, "radius", None, where), self.num(g, "length", None, where))
        elif g.tag == "sphere":
            size = (self.num(g, "radius", None, where),)
        else:
            raise self.fail(where, f"geometry <{g.tag}> is not supported; use box, cylinder or sphere primitives")
        if any(s <= 0 for s in size):
            raise self.fail(where, f"<{g.tag}> needs positive dimensions, got {size}")
        return Shape(g.tag, size, xyz, rpy)

    def inertial(self, el: ET.Element | None, where: str) -> Inertial | None:
        if el is None:
            return None
        xyz, rpy = self.origin(el.find("origin"), where)
        mass = self.num(el.find("mass"), "value", 0.0, where)
        if mass <= 0:
            raise self.fail(where, "mass must be > 0")
        inertia = el.find("inertia")
        if inertia is None:
            raise self.fail(where, "needs <inertia>")
        for off in ("ixy", "ixz", "iyz"):
            if abs(self.num(inertia, off, 0.0, where)) > 1e-12:
                raise self.fail(where, f"off-diagonal inertia {off} is not supported; rotate the inertial origin")
        diag = (
            self.num(inertia, "ixx", 0.0, where),
            self.num(inertia, "iyy", 0.0, where),
            self.num(inertia, "izz", 0.0, where),
        )
        return Inertial(mass, xyz, rpy, diag)

    def origin(self, el: ET.Element | None, where: str) -> tuple[Vec3, Vec3]:
        if el is None:
            return (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
        return self.vec(el, "xyz", where, (0.0, 0.0, 0.0)), self.vec(el, "rpy", where, (0.0, 0.0, 0.0))

    def attr(self, el: ET.Element | None, name: str, where: str) -> str:
        if el is None or not el.get(name):
            raise self.fail(where, f"missing attribute {name!r}")
        return el.get(name, "")

    def vec(self, el: ET.Element, name: str, where: str, default: Vec3 | None = None) -> Vec3:
        text = el.get(name)
        if text is None:
            if default is None:
                raise self.fail(where, f"<{el.tag}> needs {name}")
            return default
        try:
            parts = [float(x) for x in text.split()]
        except ValueError:
            parts = []
        if len(parts) != 3:
            raise self.fail(where, f"{el.tag}@{name}: expected 3 numbers, got {text!r}")
        return (parts[0], parts[1], parts[2])

    def num(self, el: ET.Element | None, name: str, default: float | None, where: str) -> float:
        if el is None or el.get(name) is None:
            if default is None:  # required: only asked of an element that is there
                raise self.fail(where, f"<{el.tag if el is not None else ''}> needs {name}")
            return default
        try:
            return float(el.get(name, ""))
        except ValueError:
            raise self.fail(where, f"{el.tag}@{name}={el.get(name)!r} is not a number") from None
