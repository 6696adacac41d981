"""The subset of URDF the generators read: links with primitive geometry, joints, limits, mimic.

MuJoCo and Gazebo worlds are generated from the same parsed robot so neither
keeps its own copy of the arm. Meshes are refused by name rather than silently
dropped: a collision shape that vanished would make the simulation lie.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from autolab.sim.errors import UrdfError

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Shape:
    kind: str  # box | cylinder | sphere
    size: tuple[float, ...]  # box: full extents; cylinder: (radius, length); sphere: (radius,)
    xyz: Vec3 = (0.0, 0.0, 0.0)
    rpy: Vec3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Inertial:
    mass: float
    xyz: Vec3
    rpy: Vec3
    diag: Vec3  # ixx, iyy, izz (off-diagonal terms must be zero)


@dataclass(frozen=True)
class Link:
    name: str
    inertial: Inertial | None
    collisions: tuple[Shape, ...]
    visuals: tuple[Shape, ...]


@dataclass(frozen=True)
class Joint:
    name: str
    type: str  # revolute | continuous | prismatic | fixed
    parent: str
    child: str
    xyz: Vec3
    rpy: Vec3
    axis: Vec3
    lower: float = 0.0
    upper: float = 0.0
    velocity: float = 0.0
    effort: float = 0.0
    damping: float = 0.0
    friction: float = 0.0
    mimic: tuple[str, float, float] | None = None  # (joint, multiplier, offset)

    @property
    def movable(self) -> bool:
        return self.type != "fixed"


@dataclass(frozen=True)
class Robot:
    name: str
    links: dict[str, Link]
    joints: dict[str, Joint]
    root: str
    source: str = field(repr=False, default="")

    def children(self, link: str) -> list[Joint]:
        return [j for j in self.joints.values() if j.parent == link]

    def movable_joints(self) -> list[Joint]:
        """Movable joints in depth-first order from the root."""
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
        return parse_urdf(p.read_text(), str(p))
    except OSError as exc:
        raise UrdfError(f"{p}: cannot read: {exc.strerror or exc}") from None


def parse_urdf(text: str, source: str = "<urdf>") -> Robot:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise UrdfError(f"{source}: not valid XML: {exc}") from None
    if root.tag != "robot":
        raise UrdfError(f"{source}: the root element is <{root.tag}>, expected <robot>")
    links = {}
    for el in root.findall("link"):
        name = _req(el, "name", source)
        links[name] = Link(
            name=name,
            inertial=_inertial(el.find("inertial"), f"{source}: link {name}"),
            collisions=tuple(_shape(c, f"{source}: link {name} collision") for c in el.findall("collision")),
            visuals=tuple(_shape(c, f"{source}: link {name} visual") for c in el.findall("visual")),
        )
    joints = {}
    for el in root.findall("joint"):
        name = _req(el, "name", source)
        where = f"{source}: joint {name}"
        jtype = _req(el, "type", where)
        if jtype not in ("revolute", "continuous", "prismatic", "fixed"):
            raise UrdfError(f"{where}: joint type {jtype!r} is not supported (revolute, continuous, prismatic, fixed)")
        parent = _req(el.find("parent"), "link", where)
        child = _req(el.find("child"), "link", where)
        for ln in (parent, child):
            if ln not in links:
                raise UrdfError(f"{where}: link {ln!r} is not defined")
        xyz, rpy = _origin(el.find("origin"), where)
        axis_el = el.find("axis")
        axis = _vec(axis_el.get("xyz"), where) if axis_el is not None else (1.0, 0.0, 0.0)
        lim = el.find("limit")
        dyn = el.find("dynamics")
        mim = el.find("mimic")
        if jtype in ("revolute", "prismatic") and lim is None:
            raise UrdfError(f"{where}: a {jtype} joint needs <limit>")
        joints[name] = Joint(
            name=name,
            type=jtype,
            parent=parent,
            child=child,
            xyz=xyz,
            rpy=rpy,
            axis=axis,
            lower=_f(lim, "lower", 0.0, where),
            upper=_f(lim, "upper", 0.0, where),
            velocity=_f(lim, "velocity", 0.0, where),
            effort=_f(lim, "effort", 0.0, where),
            damping=_f(dyn, "damping", 0.0, where),
            friction=_f(dyn, "friction", 0.0, where),
            mimic=(_req(mim, "joint", where), _f(mim, "multiplier", 1.0, where), _f(mim, "offset", 0.0, where))
            if mim is not None
            else None,
        )
    children = {j.child for j in joints.values()}
    roots = [n for n in links if n not in children]
    if len(roots) != 1:
        raise UrdfError(f"{source}: expected one root link, found {roots or 'none'}")
    for j in joints.values():
        if j.mimic and j.mimic[0] not in joints:
            raise UrdfError(f"{source}: joint {j.name} mimics unknown joint {j.mimic[0]!r}")
    return Robot(name=root.get("name", "robot"), links=links, joints=joints, root=roots[0], source=text)


def _req(el: ET.Element | None, attr: str, where: str) -> str:
    if el is None or not el.get(attr):
        raise UrdfError(f"{where}: missing attribute {attr!r}")
    return el.get(attr, "")


def _vec(text: str | None, where: str, default: Vec3 = (0.0, 0.0, 0.0)) -> Vec3:
    if text is None:
        return default
    try:
        parts = [float(x) for x in text.split()]
    except ValueError:
        raise UrdfError(f"{where}: {text!r} is not a list of numbers") from None
    if len(parts) != 3:
        raise UrdfError(f"{where}: {text!r} must have 3 numbers")
    return (parts[0], parts[1], parts[2])


def _f(el: ET.Element | None, attr: str, default: float, where: str) -> float:
    if el is None or el.get(attr) is None:
        return default
    try:
        return float(el.get(attr, ""))
    except ValueError:
        raise UrdfError(f"{where}: {attr}={el.get(attr)!r} is not a number") from None


def _origin(el: ET.Element | None, where: str) -> tuple[Vec3, Vec3]:
    if el is None:
        return (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    return _vec(el.get("xyz"), where), _vec(el.get("rpy"), where)


def _shape(el: ET.Element, where: str) -> Shape:
    xyz, rpy = _origin(el.find("origin"), where)
    geo = el.find("geometry")
    if geo is None or len(geo) != 1:
        raise UrdfError(f"{where}: needs exactly one geometry")
    g = geo[0]
    if g.tag == "box":
        return Shape("box", _vec(g.get("size"), where), xyz, rpy)
    if g.tag == "cylinder":
        return Shape("cylinder", (_f(g, "radius", 0.0, where), _f(g, "length", 0.0, where)), xyz, rpy)
    if g.tag == "sphere":
        return Shape("sphere", (_f(g, "radius", 0.0, where),), xyz, rpy)
    raise UrdfError(f"{where}: geometry <{g.tag}> is not supported; use box, cylinder or sphere primitives")


def _inertial(el: ET.Element | None, where: str) -> Inertial | None:
    if el is None:
        return None
    xyz, rpy = _origin(el.find("origin"), where)
    mass_el, inertia = el.find("mass"), el.find("inertia")
    mass = _f(mass_el, "value", 0.0, where)
    if mass <= 0:
        raise UrdfError(f"{where}: inertial mass must be > 0")
    if inertia is None:
        raise UrdfError(f"{where}: inertial needs <inertia>")
    for off in ("ixy", "ixz", "iyz"):
        if abs(_f(inertia, off, 0.0, where)) > 1e-12:
            raise UrdfError(f"{where}: off-diagonal inertia {off} is not supported; rotate the inertial origin")
    diag = (_f(inertia, "ixx", 0.0, where), _f(inertia, "iyy", 0.0, where), _f(inertia, "izz", 0.0, where))
    return Inertial(mass, xyz, rpy, diag)
