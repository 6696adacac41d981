"""The MuJoCo world, generated from the workcell description and the arm's URDF.

Nothing here is written by hand twice: fixed bodies, nests, the conveyor, the
labware and the camera come from `config/workcell.yaml`, the arm and gripper
from `urdf/arm.urdf` as `autolab.model.urdf` read it (the planner's kinematics
are built from the same parsed robot). The result is an MJCF string (inspectable, testable) plus
in-memory texture assets, compiled into an `MjModel`.

Physics choices (each one matters for holding labware by friction):
- elliptic friction cones with impratio 10, so an 80 g plate squeezed by two
  finger pads does not creep out of the grasp during fast carries;
- labware are free bodies with their real mass, never welded to the gripper;
- the arm's geoms share one contact bit, so links never collide with each other
  but do collide with the cell and with labware; fingers touch labware;
- arm joints are position servos with gravity compensation (as a real arm's
  controller has), driven with velocity feed-forward by the engine;
- the conveyor is a row of driven rollers: plates ride on them by friction.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from autolab.model.geometry import Pose, rpy_to_quat_wxyz, yaw_to_quat_wxyz
from autolab.model.urdf import Joint, Robot, Shape
from autolab.model.workcell import LabwareType, Location, Workcell
from autolab.sim import markers
from autolab.sim.errors import ModelBuildError

if TYPE_CHECKING:
    import mujoco

# Contact bits: static cell, arm, labware. Arm geoms do not collide with each other.
CELL, ARM, LABWARE = 1, 2, 4

NEST_CLEARANCE_M = 0.001  # gap between labware footprint and locating bars
NEST_BAR_THICKNESS_M = 0.003
NEST_BAR_HEIGHT_M = 0.003
NEST_BAR_LENGTH_M = 0.015
FLOOR_Z = -0.75
# Spare labware wait here, out of reach and out of view, floating without contacts (see engine.park).
PARKING_ORIGIN = (2.5, 2.5)
PARKING_Z = 0.0
PARKING_PITCH_M = 0.2
LABWARE_FRICTION = (0.5, 0.005, 0.0001)
FINGER_FRICTION = (1.2, 0.01, 0.0002)
ROLLER_FRICTION = (1.0, 0.005, 0.0001)
# Stiff contacts for labware and finger pads (time constant 2 physics steps): a 40 N grasp then
# compresses the pads by a fraction of a millimetre instead of several, as real plastic would.
STIFF_SOLREF = "0.004 1"
STIFF_SOLIMP = "0.95 0.99 0.0005"


@dataclass(frozen=True)
class SimOptions:
    """Tuning of the generated model; not part of the cell description."""

    timestep: float = 0.002
    spares_per_type: int = 2  # parked free bodies per labware type, for spawn_labware
    arm_kp_per_newton_metre: float = 20.0  # servo stiffness as a multiple of the joint's effort limit
    arm_kv_ratio: float = 0.1  # kv = ratio * kp
    arm_armature: float = 0.1
    gripper_kp: float = 1500.0
    roller_kv: float = 1.0


@dataclass(frozen=True)
class LabwareBody:
    """A free body of the model: an inventory item, or a parked spare waiting to be spawned."""

    body: str  # MuJoCo body name
    type: str
    item_id: str  # empty for a spare
    barcode: str
    aruco_id: int
    initial: Pose  # where it starts (its location, or its parking place)
    location: str  # initial location id; empty for a spare


@dataclass
class World:
    """The generated model and what the engine needs to drive it."""

    workcell: Workcell
    robot: Robot
    xml: str
    assets: dict[str, bytes]
    options: SimOptions
    labware: list[LabwareBody] = field(default_factory=list)
    rollers: list[str] = field(default_factory=list)  # roller joint names
    camera: str = ""
    _model: mujoco.MjModel | None = None

    @property
    def model(self) -> mujoco.MjModel:
        if self._model is None:
            self._model = compile_model(self.xml, self.assets)
        return self._model


def build_world(workcell: Workcell, options: SimOptions | None = None) -> World:
    """Generate the MJCF for a workcell (not compiled yet: `World.model` compiles on first use)."""
    opts = options or SimOptions()
    return _Builder(workcell, workcell.arm.robot, opts).build()


def nest_guides(lt: LabwareType) -> list[tuple[tuple[float, float, float], Pose]]:
    """Four L-shaped corner guides (8 bars) around a footprint: (size, pose in the location's frame)."""
    hl = lt.length_mm / 2000 + NEST_CLEARANCE_M
    hw = lt.width_mm / 2000 + NEST_CLEARANCE_M
    t, h, ln = NEST_BAR_THICKNESS_M, NEST_BAR_HEIGHT_M, NEST_BAR_LENGTH_M
    out = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            out.append(((ln, t, h), Pose(sx * (hl + t - ln / 2), sy * (hw + t / 2), h / 2, 0.0)))
            out.append(((t, ln, h), Pose(sx * (hl + t / 2), sy * (hw + t - ln / 2), h / 2, 0.0)))
    return out


def compile_model(xml: str, assets: dict[str, bytes]) -> mujoco.MjModel:
    import mujoco

    try:
        return mujoco.MjModel.from_xml_string(xml, assets)
    except ValueError as exc:
        raise ModelBuildError(f"MuJoCo rejected the generated model: {exc}") from None


def _fmt(values) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def _quat_str(q: tuple[float, float, float, float]) -> str:
    return _fmt(q)


class _Builder:
    def __init__(self, wc: Workcell, robot: Robot, opts: SimOptions) -> None:
        self.wc = wc
        self.robot = robot
        self.opts = opts
        self.assets: dict[str, bytes] = {}
        self.labware: list[LabwareBody] = []
        self.rollers: list[str] = []
        self.camera_name = ""

    def build(self) -> World:
        root = ET.Element("mujoco", model=self.wc.name)
        ET.SubElement(root, "compiler", angle="radian", autolimits="true")
        ET.SubElement(
            root,
            "option",
            timestep=f"{self.opts.timestep:g}",
            integrator="implicitfast",
            cone="elliptic",
            impratio="10",
        )
        visual = ET.SubElement(root, "visual")
        cam = self.wc.devices.get("camera1")
        width = int(cam.params.get("width", 640)) if cam else 640
        height = int(cam.params.get("height", 480)) if cam else 480
        ET.SubElement(visual, "global", offwidth=str(width), offheight=str(height))
        ET.SubElement(visual, "quality", shadowsize="0")  # shadows off: cheaper, and no false edges for vision
        ET.SubElement(visual, "headlight", ambient="0.4 0.4 0.4", diffuse="0.5 0.5 0.5", specular="0 0 0")
        self.asset = ET.SubElement(root, "asset")
        ET.SubElement(self.asset, "material", name="label_white", rgba="1 1 1 1", specular="0", reflectance="0")
        self.worldbody = ET.SubElement(root, "worldbody")
        ET.SubElement(
            self.worldbody,
            "light",
            name="overhead",
            directional="true",
            castshadow="false",
            pos="0 0 3",
            dir="0 0 -1",
            diffuse="0.6 0.6 0.6",
            specular="0 0 0",
        )
        ET.SubElement(
            self.worldbody,
            "geom",
            name="floor",
            type="plane",
            size="0 0 0.05",
            pos=f"0 0 {FLOOR_Z}",
            rgba="0.3 0.32 0.35 1",
            contype=str(CELL),
            conaffinity=str(ARM | LABWARE),
        )
        self.actuators = ET.SubElement(root, "actuator")
        self.equality = ET.SubElement(root, "equality")
        self.contact = ET.SubElement(root, "contact")

        for box in self.wc.fixtures:
            self._static_box(self.worldbody, f"fixture/{box.name}", box.size, box.pose, box.rgba)
        for dev in self.wc.devices.values():
            for box in dev.bodies:
                self._static_box(self.worldbody, f"{dev.id}/{box.name}", box.size, dev.pose.compose(box.pose), box.rgba)
            if dev.type == "conveyor":
                self._conveyor(dev.id)
            if dev.type == "camera":
                self._camera(dev.id)
        for loc in self.wc.locations.values():
            if loc.kind != "conveyor_station":
                self._nest(loc)
        self._arm()
        self._labware()
        xml = ET.tostring(root, encoding="unicode")
        return World(
            workcell=self.wc,
            robot=self.robot,
            xml=xml,
            assets=self.assets,
            options=self.opts,
            labware=self.labware,
            rollers=self.rollers,
            camera=self.camera_name,
        )

    # --- fixed bodies -----------------------------------------------------------------------------

    def _static_box(self, parent: ET.Element, name: str, size, pose: Pose, rgba, **extra: str) -> ET.Element:
        return ET.SubElement(
            parent,
            "geom",
            name=name,
            type="box",
            size=_fmt(s / 2 for s in size),
            pos=_fmt((pose.x, pose.y, pose.z)),
            quat=_quat_str(yaw_to_quat_wxyz(pose.yaw)),
            rgba=_fmt(rgba),
            contype=str(CELL),
            conaffinity=str(ARM | LABWARE),
            **extra,
        )

    def _nest(self, loc: Location) -> None:
        """Locating guides around the footprint, so a placed plate seats at the nest pose."""
        for i, (size, local) in enumerate(nest_guides(self.wc.labware_types[loc.accepts[0]])):
            self._static_box(
                self.worldbody, f"nest/{loc.id}/{i}", size, loc.pose.compose(local), (0.15, 0.15, 0.15, 1.0)
            )

    def _conveyor(self, dev_id: str) -> None:
        dev = self.wc.devices[dev_id]
        p = dev.params
        try:
            length, width = float(p["length_m"]), float(p["width_m"])
            surface, r, pitch = float(p["surface_height_m"]), float(p["roller_radius_m"]), float(p["roller_pitch_m"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelBuildError(
                f"conveyor {dev_id!r} needs numeric params length_m, width_m, surface_height_m, "
                f"roller_radius_m, roller_pitch_m ({exc})"
            ) from None
        if pitch < 2 * r:
            raise ModelBuildError(f"conveyor {dev_id!r}: roller_pitch_m {pitch} is less than a roller diameter")
        n = int(length // pitch)
        half_len = max(width / 2 - r, 0.001)
        for i in range(n):
            x = -length / 2 + pitch / 2 + i * pitch
            pose = dev.pose.compose(Pose(x, 0.0, surface - r, 0.0))
            body = ET.SubElement(
                self.worldbody,
                "body",
                name=f"{dev_id}/roller{i}",
                pos=_fmt((pose.x, pose.y, pose.z)),
                quat=_quat_str(yaw_to_quat_wxyz(pose.yaw)),
            )
            jname = f"{dev_id}/roller{i}"
            ET.SubElement(body, "joint", name=jname, type="hinge", axis="0 1 0", damping="0.001", armature="0.005")
            ET.SubElement(
                body,
                "geom",
                name=f"{dev_id}/roller{i}",
                type="capsule",
                size=_fmt((r, half_len)),
                quat=_quat_str(rpy_to_quat_wxyz(math.pi / 2, 0, 0)),
                mass="0.05",
                rgba="0.6 0.6 0.62 1",
                friction=_fmt(ROLLER_FRICTION),
                contype=str(CELL),
                conaffinity=str(ARM | LABWARE),
            )
            ET.SubElement(
                self.actuators, "velocity", name=jname, joint=jname, kv=f"{self.opts.roller_kv:g}", forcerange="-1 1"
            )
            self.rollers.append(jname)

    def _camera(self, dev_id: str) -> None:
        dev = self.wc.devices[dev_id]
        fovy = float(dev.params.get("fovy_deg", 58.0))
        ET.SubElement(
            self.worldbody,
            "camera",
            name=dev_id,
            mode="fixed",
            pos=_fmt((dev.pose.x, dev.pose.y, dev.pose.z)),
            quat=_quat_str(yaw_to_quat_wxyz(dev.pose.yaw)),
            fovy=f"{fovy:g}",
        )
        self.camera_name = dev_id

    # --- arm -----------------------------------------------------------------------------------------

    def _arm(self) -> None:
        arm = self.wc.arm
        dev = next(d for d in self.wc.devices.values() if d.type == "arm")
        if arm.base_link != self.robot.root:
            raise ModelBuildError(f"arm base_link {arm.base_link!r} is not the URDF's root link {self.robot.root!r}")
        base = ET.SubElement(
            self.worldbody,
            "body",
            name=self.robot.root,
            pos=_fmt((dev.pose.x, dev.pose.y, dev.pose.z)),
            quat=_quat_str(yaw_to_quat_wxyz(dev.pose.yaw)),
        )
        self._link_contents(base, self.robot.root)
        self._children(base, self.robot.root)
        fingers = set(arm.finger_joints)
        for j in self.robot.movable_joints():
            if j.mimic is not None:
                ET.SubElement(
                    self.equality,
                    "joint",
                    name=f"mimic/{j.name}",
                    joint1=j.name,
                    joint2=j.mimic.joint,
                    polycoef=_fmt((j.mimic.offset, j.mimic.multiplier, 0, 0, 0)),
                    solref="0.006 1",
                )
                continue
            if not 0 < j.effort < math.inf:
                raise ModelBuildError(f"URDF joint {j.name!r} needs a finite positive effort limit to be driven")
            if j.name in fingers:
                ET.SubElement(
                    self.actuators,
                    "position",
                    name=j.name,
                    joint=j.name,
                    kp=f"{self.opts.gripper_kp:g}",
                    forcerange=_fmt((-arm.grip_force_n, arm.grip_force_n)),
                    ctrlrange=_fmt((j.lower, j.upper)),
                )
            elif j.name in arm.arm_joints:
                kp = self.opts.arm_kp_per_newton_metre * j.effort
                ET.SubElement(
                    self.actuators,
                    "position",
                    name=j.name,
                    joint=j.name,
                    kp=f"{kp:g}",
                    kv=f"{self.opts.arm_kv_ratio * kp:g}",
                    forcerange=_fmt((-j.effort, j.effort)),
                    ctrllimited="false",
                )
            else:
                raise ModelBuildError(f"URDF joint {j.name!r} is neither an arm nor a finger joint of the description")
        tcp = self.robot.links.get(arm.tcp_link)
        if tcp is None:
            raise ModelBuildError(f"tcp_link {arm.tcp_link!r} is not in the URDF")

    def _children(self, parent_el: ET.Element, link: str) -> None:
        for j in self.robot.children(link):
            body = ET.SubElement(
                parent_el, "body", name=j.child, pos=_fmt(j.xyz), quat=_quat_str(rpy_to_quat_wxyz(*j.rpy)), gravcomp="1"
            )
            if j.movable:
                self._joint(body, j)
            self._link_contents(body, j.child)
            self._children(body, j.child)

    def _joint(self, body: ET.Element, j: Joint) -> None:
        attrs = {"name": j.name, "axis": _fmt(j.axis), "damping": f"{j.damping:g}", "frictionloss": f"{j.friction:g}"}
        if j.type == "prismatic":
            attrs.update(type="slide", range=_fmt((j.lower, j.upper)))
        else:
            attrs.update(type="hinge", armature=f"{self.opts.arm_armature:g}")
            if j.type == "revolute":
                attrs["range"] = _fmt((j.lower, j.upper))
        ET.SubElement(body, "joint", **attrs)

    def _link_contents(self, body: ET.Element, link_name: str) -> None:
        link = self.robot.links[link_name]
        if link.inertial is not None:
            ine = link.inertial
            ET.SubElement(
                body,
                "inertial",
                pos=_fmt(ine.xyz),
                quat=_quat_str(rpy_to_quat_wxyz(*ine.rpy)),
                mass=f"{ine.mass:g}",
                diaginertia=_fmt(ine.diag),
            )
        is_finger = link_name in {self.robot.joints[j].child for j in self.wc.arm.finger_joints}
        for k, shape in enumerate(link.collisions):
            self._shape_geom(body, f"{link_name}/{k}", shape, is_finger)
        if link_name == self.wc.arm.tcp_link:
            ET.SubElement(body, "site", name="tcp", size="0.005", rgba="1 0 0 0.5")

    def _shape_geom(self, body: ET.Element, name: str, s: Shape, finger: bool) -> None:
        attrs = {
            "name": name,
            "pos": _fmt(s.xyz),
            "quat": _quat_str(rpy_to_quat_wxyz(*s.rpy)),
            "contype": str(ARM),
            "conaffinity": str(CELL | LABWARE),
            "rgba": "0.7 0.72 0.75 1",
            "density": "0",
        }  # mass comes from the URDF inertials
        if s.kind == "box":
            attrs.update(type="box", size=_fmt(v / 2 for v in s.size))
        elif s.kind == "cylinder":
            attrs.update(type="cylinder", size=_fmt((s.size[0], s.size[1] / 2)))
        else:
            attrs.update(type="sphere", size=f"{s.size[0]:g}")
        if finger:
            attrs.update(
                friction=_fmt(FINGER_FRICTION),
                condim="4",
                rgba="0.15 0.15 0.15 1",
                solref=STIFF_SOLREF,
                solimp=STIFF_SOLIMP,
            )
        ET.SubElement(body, "geom", **attrs)

    # --- labware ---------------------------------------------------------------------------------------

    def _labware(self) -> None:
        used = {item.aruco_id for item in self.wc.inventory}
        free_ids = [i for i in range(markers.DICTIONARY_SIZE - 1, -1, -1) if i not in used]
        for item in self.wc.inventory:
            loc = self.wc.locations[item.location]
            lt = self.wc.labware_types[item.type]
            self._labware_body(
                LabwareBody(f"labware/{item.id}", item.type, item.id, item.barcode, item.aruco_id, loc.pose, loc.id), lt
            )
        k = 0
        for type_id, lt in self.wc.labware_types.items():
            for n in range(self.opts.spares_per_type):
                if not free_ids:
                    raise ModelBuildError("no ArUco ids left for spare labware; lower spares_per_type")
                park = Pose(
                    PARKING_ORIGIN[0] + PARKING_PITCH_M * (k % 10),
                    PARKING_ORIGIN[1] + PARKING_PITCH_M * (k // 10),
                    PARKING_Z,
                    0.0,
                )
                self._labware_body(LabwareBody(f"spare/{type_id}/{n}", type_id, "", "", free_ids.pop(0), park, ""), lt)
                k += 1

    def _labware_body(self, lb: LabwareBody, lt: LabwareType) -> None:
        length, width, height = lt.size_m
        p = lb.initial
        parked = not lb.item_id
        body = ET.SubElement(
            self.worldbody,
            "body",
            name=lb.body,
            pos=_fmt((p.x, p.y, p.z + 0.0005)),
            quat=_quat_str(yaw_to_quat_wxyz(p.yaw)),
            gravcomp="1" if parked else "0",
        )
        ET.SubElement(body, "freejoint", name=lb.body)
        colour = {"plate": "0.92 0.93 0.95 1", "reservoir": "0.75 0.85 0.95 1", "tube_rack": "0.95 0.8 0.4 1"}
        ET.SubElement(
            body,
            "geom",
            name=lb.body,
            type="box",
            size=_fmt((length / 2, width / 2, height / 2)),
            pos=_fmt((0, 0, height / 2)),
            mass=f"{lt.mass_g / 1000:g}",
            rgba=colour.get(lt.kind, "0.9 0.9 0.9 1"),
            friction=_fmt(LABWARE_FRICTION),
            condim="4",
            solref=STIFF_SOLREF,
            solimp=STIFF_SOLIMP,
            contype="0" if parked else str(LABWARE),
            conaffinity="0" if parked else str(CELL | ARM | LABWARE),
        )
        self._marker(body, lb.aruco_id, height)
        self.labware.append(lb)

    def _marker(self, body: ET.Element, aruco_id: int, height: float) -> None:
        import cv2

        name = f"aruco{aruco_id}"
        if f"{name}.png" not in self.assets:
            img = markers.marker_image(aruco_id)
            ok, png = cv2.imencode(".png", img)
            if not ok:
                raise ModelBuildError(f"cannot encode the texture of ArUco marker {aruco_id}")
            self.assets[f"{name}.png"] = png.tobytes()
            ET.SubElement(self.asset, "texture", name=name, type="2d", file=f"{name}.png")
            ET.SubElement(self.asset, "material", name=name, texture=name, specular="0", reflectance="0")
        half = markers.label_side_m() / 2
        half_thick = markers.LABEL_THICKNESS_M / 2
        ET.SubElement(
            body,
            "geom",
            name=f"{body.get('name')}/label",
            type="box",
            size=_fmt((half, half, half_thick)),
            pos=_fmt((0, 0, height + half_thick)),
            material=name,
            contype="0",
            conaffinity="0",
            mass="0",
            group="2",
        )


def main(argv: list[str] | None = None) -> int:
    """Write the generated MJCF and its textures to a folder, e.g. to open it in MuJoCo's viewer."""
    import argparse
    from pathlib import Path

    from autolab.model.workcell import load_workcell

    ap = argparse.ArgumentParser(prog="python -m autolab.sim.world", description=main.__doc__)
    ap.add_argument("output", help="folder to write workcell.xml and the marker textures into")
    ap.add_argument("--workcell", help="workcell description (default: config/workcell.yaml)")
    args = ap.parse_args(argv)
    world = build_world(load_workcell(args.workcell))
    world.model  # noqa: B018 - compile, so a broken model fails here rather than in the viewer
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "workcell.xml").write_text(world.xml)
    for name, data in world.assets.items():
        (out / name).write_bytes(data)
    print(
        f"wrote {out / 'workcell.xml'} ({len(world.assets)} textures); view: python -m mujoco.viewer "
        f"--mjcf={out / 'workcell.xml'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
