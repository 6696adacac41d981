"""The workcell description: locations, devices, labware types and inventory, as data.

One YAML file (default `config/workcell.yaml`) plus the arm's URDF (parsed once,
by `autolab.model.urdf`, into `ArmConfig.robot`) describe the cell; the MuJoCo
model, the planner's kinematics, the Gazebo world, RViz markers and pre-flight
checks are all generated from it. Loading validates everything up front, so a bad
description fails at start with the file, the key, the line and the problem,
not later as a plate dropped at the wrong place.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from autolab.model.errors import DescriptionError
from autolab.model.geometry import Pose
from autolab.model.urdf import Robot, parse_urdf

LOCATION_KINDS = ("hotel_slot", "conveyor_station", "instrument_nest", "deck")
LABWARE_KINDS = ("plate", "reservoir", "tube_rack")
DEVICE_TYPES = (
    "arm",
    "conveyor",
    "hotel",
    "plate_reader",
    "sealer",
    "incubator",
    "liquid_handler",
    "barcode_reader",
    "camera",
)
SCHEMA_VERSION = 1
DEFAULT_APPROACH = (0.0, 0.0, 0.12)


@dataclass(frozen=True)
class Box:
    """A box-shaped fixed body: full extents in metres, pose of its centre in the owner's frame."""

    name: str
    size: tuple[float, float, float]
    pose: Pose
    rgba: tuple[float, float, float, float] = (0.7, 0.7, 0.7, 1.0)


@dataclass(frozen=True)
class Device:
    id: str
    type: str
    backend: str
    pose: Pose  # device frame in `world`
    params: Mapping[str, Any] = field(default_factory=dict)
    bodies: tuple[Box, ...] = ()  # box poses in the device frame


@dataclass(frozen=True)
class Location:
    id: str
    kind: str
    pose: Pose  # in `world`: where the labware origin sits when seated here
    approach: tuple[float, float, float]  # offset in the location's frame
    device: str | None
    accepts: tuple[str, ...]

    def approach_pose(self) -> Pose:
        """The approach point in `world` (the location's pose shifted by its approach offset)."""
        return self.pose.compose(Pose(*self.approach, 0.0))


@dataclass(frozen=True)
class LabwareType:
    """Labware geometry in millimetres (datasheet units); `size_m` gives metres."""

    id: str
    kind: str
    length_mm: float
    width_mm: float
    height_mm: float
    rows: int
    cols: int
    well_pitch_mm: float
    a1_offset_mm: tuple[float, float]
    well_volume_ul: float
    well_depth_mm: float
    well_diameter_mm: float
    mass_g: float
    grasp_height_mm: float

    @property
    def size_m(self) -> tuple[float, float, float]:
        return (self.length_mm / 1000.0, self.width_mm / 1000.0, self.height_mm / 1000.0)

    @property
    def wells(self) -> int:
        return self.rows * self.cols

    def well_names(self) -> list[str]:
        """Well names in row-major order: A1, A2, ..., then B1, ..."""
        return [f"{_row_letter(r)}{c + 1}" for r in range(self.rows) for c in range(self.cols)]

    def well_position_m(self, well: str) -> tuple[float, float, float]:
        """Centre of a well's top opening in the labware frame, in metres."""
        row, col = self.parse_well(well)
        x = -self.length_mm / 2 + self.a1_offset_mm[0] + col * self.well_pitch_mm
        y = self.width_mm / 2 - self.a1_offset_mm[1] - row * self.well_pitch_mm
        return (x / 1000.0, y / 1000.0, self.height_mm / 1000.0)

    def parse_well(self, well: str) -> tuple[int, int]:
        """'B3' -> (1, 2); ValueError naming the problem for a well this type does not have."""
        letters = "".join(ch for ch in well if ch.isalpha()).upper()
        digits = well[len(letters) :]
        if not letters or not digits.isdigit() or well[: len(letters)].upper() != letters:
            raise ValueError(f"{well!r} is not a well name like 'A1'")
        row = 0
        for ch in letters:
            row = row * 26 + (ord(ch) - ord("A") + 1)
        row -= 1
        col = int(digits) - 1
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise ValueError(f"well {well!r} does not exist on {self.id} ({self.rows} rows x {self.cols} cols)")
        return row, col


@dataclass(frozen=True)
class LabwareItem:
    id: str
    type: str
    location: str
    barcode: str
    aruco_id: int


@dataclass(frozen=True)
class ArmConfig:
    """The arm's description, resolved and checked against its URDF."""

    urdf_path: Path
    base_link: str
    tcp_link: str
    arm_joints: tuple[str, ...]
    finger_joints: tuple[str, ...]
    joint_limits: Mapping[str, tuple[float, float]]
    named_poses: Mapping[str, tuple[float, ...]]
    max_opening_m: float
    grip_force_n: float
    safe_height_m: float
    robot: Robot = field(repr=False, compare=False)  # the parsed URDF, shared by the sim and the planner


@dataclass(frozen=True)
class Workcell:
    name: str
    path: Path
    locations: Mapping[str, Location]
    devices: Mapping[str, Device]
    labware_types: Mapping[str, LabwareType]
    inventory: tuple[LabwareItem, ...]
    fixtures: tuple[Box, ...]
    arm: ArmConfig
    normalised: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)
    urdf_text: str = field(repr=False, default="")

    def hash(self) -> str:
        """sha256 of the normalised description and the arm URDF, for run provenance.

        Formatting, comments, key order and anchors do not change it; any value does.
        """
        blob = json.dumps(self.normalised, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob + b"\0" + self.urdf_text.encode()).hexdigest()

    def location(self, location_id: str) -> Location:
        try:
            return self.locations[location_id]
        except KeyError:
            raise KeyError(f"unknown location {location_id!r}; known: {', '.join(sorted(self.locations))}") from None

    def labware_type_of(self, item_id: str) -> LabwareType:
        for item in self.inventory:
            if item.id == item_id:
                return self.labware_types[item.type]
        raise KeyError(f"no labware {item_id!r} in the inventory")

    def locations_of(self, device_id: str) -> list[Location]:
        return [loc for loc in self.locations.values() if loc.device == device_id]

    def stations(self, device_id: str = "conveyor") -> list[Location]:
        """Conveyor stations of a conveyor, ordered along its belt axis."""
        dev = self.devices[device_id]
        locs = [loc for loc in self.locations_of(device_id) if loc.kind == "conveyor_station"]
        return sorted(locs, key=lambda loc: dev.pose.inverse().compose(loc.pose).x)


def default_path() -> Path:
    from autolab.paths import data_path

    return data_path("config", "workcell.yaml")


def load_workcell(path: str | Path | None = None) -> Workcell:
    """Load and validate a workcell description; raises DescriptionError on any problem."""
    p = Path(path) if path is not None else default_path()
    try:
        text = p.read_text()
    except OSError as exc:
        raise DescriptionError(str(p), "", f"cannot read the file: {exc.strerror or exc}") from None
    return parse_workcell(text, p)


def parse_workcell(text: str, path: Path) -> Workcell:
    """Validate a description given as text; `path` names it in errors and anchors relative paths."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise DescriptionError(str(path), "", f"not valid YAML: {getattr(exc, 'problem', exc)}", line) from None
    return _Parser(path, node).workcell(data)


# --- parsing -----------------------------------------------------------------------------------------


def _row_letter(row: int) -> str:
    s = ""
    row += 1
    while row:
        row, rem = divmod(row - 1, 26)
        s = chr(ord("A") + rem) + s
    return s


def _key(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in str(part) or not str(part).isidentifier():
            out += f"[{str(part)!r}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _line_index(node: yaml.Node | None, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path to the 1-based line of its value, to point errors at the right line."""
    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[(*path, k.value)] = k.start_mark.line + 1
            _line_index(v, (*path, k.value), out)
            out[(*path, k.value)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _line_index(v, (*path, i), out)
    return out


class _Parser:
    def __init__(self, path: Path, node: yaml.Node | None) -> None:
        self.path = path
        self.lines = _line_index(node)

    def fail(self, path: tuple, problem: str) -> DescriptionError:
        line = None
        for n in range(len(path), -1, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                break
        return DescriptionError(str(self.path), _key(path), problem, line)

    # typed readers -----------------------------------------------------------------------------------

    def mapping(self, path: tuple, value: Any, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(value)}")
        for k in required:
            if k not in value:
                raise self.fail(path, f"missing required key {k!r}")
        allowed = set(required) | set(optional)
        for k in value:
            if k not in allowed:
                raise self.fail((*path, k), f"unknown key {k!r}; expected one of: {', '.join(sorted(allowed))}")
        return value

    def number(self, path: tuple, value: Any, positive: bool = False, nonneg: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"expected a number, got {_kind(value)}")
        v = float(value)
        if not math.isfinite(v):
            raise self.fail(path, f"expected a finite number, got {value}")
        if positive and v <= 0:
            raise self.fail(path, f"must be > 0, got {value}")
        if nonneg and v < 0:
            raise self.fail(path, f"must be >= 0, got {value}")
        return v

    def integer(self, path: tuple, value: Any, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(path, f"must be >= {minimum}, got {value}")
        return value

    def string(self, path: tuple, value: Any, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"expected a non-empty string, got {_kind(value)}")
        if choices is not None and value not in choices:
            raise self.fail(path, f"{value!r} is not one of: {', '.join(choices)}")
        return value

    def vector(self, path: tuple, value: Any, n: int, **kw: bool) -> tuple[float, ...]:
        if not isinstance(value, list) or len(value) != n:
            raise self.fail(path, f"expected a list of {n} numbers, got {_kind(value)}")
        return tuple(self.number((*path, i), v, **kw) for i, v in enumerate(value))

    def pose(self, path: tuple, value: Any) -> Pose:
        return Pose(*self.vector(path, value, 4))

    def string_list(self, path: tuple, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list of strings, got {_kind(value)}")
        return tuple(self.string((*path, i), v) for i, v in enumerate(value))

    def box(self, path: tuple, name: str, value: Any) -> Box:
        m = self.mapping(path, value, required=("size", "pose"), optional=("rgba",))
        rgba = (
            self.vector((*path, "rgba"), m["rgba"], 4, nonneg=True)
            if "rgba" in m
            else Box.__dataclass_fields__["rgba"].default
        )
        return Box(
            name, self.vector((*path, "size"), m["size"], 3, positive=True), self.pose((*path, "pose"), m["pose"]), rgba
        )  # type: ignore[arg-type]

    def boxes(self, path: tuple, value: Any) -> tuple[Box, ...]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping of body name to box, got {_kind(value)}")
        return tuple(self.box((*path, name), str(name), v) for name, v in value.items())

    # sections ------------------------------------------------------------------------------------------

    def workcell(self, data: Any) -> Workcell:
        top = self.mapping(
            (),
            data,
            required=("schema_version", "name", "devices", "labware_types", "locations", "inventory"),
            optional=("fixtures", "labware_groups", "defaults"),
        )
        version = self.integer(("schema_version",), top["schema_version"])
        if version != SCHEMA_VERSION:
            raise self.fail(
                ("schema_version",), f"unsupported schema_version {version}; this autolab reads {SCHEMA_VERSION}"
            )
        name = self.string(("name",), top["name"])
        defaults = self.mapping(("defaults",), top.get("defaults") or {}, optional=("approach",))
        approach = (
            self.vector(("defaults", "approach"), defaults["approach"], 3)
            if "approach" in defaults
            else DEFAULT_APPROACH
        )
        fixtures = self.boxes(("fixtures",), top.get("fixtures") or {})
        devices = self.devices(top["devices"])
        types = self.labware_types(top["labware_types"])
        locations = self.locations(top["locations"], devices, types, approach)
        inventory = self.inventory(top["inventory"], types, locations)
        arm, urdf_text = self.arm(devices)
        return Workcell(
            name=name,
            path=self.path,
            locations=MappingProxyType(locations),
            devices=MappingProxyType(devices),
            labware_types=MappingProxyType(types),
            inventory=inventory,
            fixtures=fixtures,
            arm=arm,
            normalised=_normalise({k: v for k, v in top.items() if k != "labware_groups"}),
            urdf_text=urdf_text,
        )

    def devices(self, value: Any) -> dict[str, Device]:
        if not isinstance(value, dict) or not value:
            raise self.fail(("devices",), f"expected a non-empty mapping of device id to device, got {_kind(value)}")
        out = {}
        for dev_id, spec in value.items():
            p = ("devices", dev_id)
            self.string(p, dev_id)
            m = self.mapping(p, spec, required=("type", "backend"), optional=("pose", "params", "bodies"))
            params = m.get("params") or {}
            if not isinstance(params, dict):
                raise self.fail((*p, "params"), f"expected a mapping, got {_kind(params)}")
            out[dev_id] = Device(
                id=dev_id,
                type=self.string((*p, "type"), m["type"], DEVICE_TYPES),
                backend=self.string((*p, "backend"), m["backend"]),
                pose=self.pose((*p, "pose"), m["pose"]) if "pose" in m else Pose(0.0, 0.0, 0.0, 0.0),
                params=MappingProxyType(dict(params)),
                bodies=self.boxes((*p, "bodies"), m.get("bodies") or {}),
            )
        for required_type in ("arm",):
            if not any(d.type == required_type for d in out.values()):
                raise self.fail(("devices",), f"no device of type {required_type!r}; a workcell needs one")
        return out

    def labware_types(self, value: Any) -> dict[str, LabwareType]:
        if not isinstance(value, dict) or not value:
            raise self.fail(("labware_types",), f"expected a non-empty mapping, got {_kind(value)}")
        out = {}
        numbers = (
            "length_mm",
            "width_mm",
            "height_mm",
            "well_pitch_mm",
            "well_volume_ul",
            "well_depth_mm",
            "well_diameter_mm",
            "mass_g",
            "grasp_height_mm",
        )
        for type_id, spec in value.items():
            p = ("labware_types", type_id)
            m = self.mapping(p, spec, required=("kind", "rows", "cols", "a1_offset_mm", *numbers))
            vals = {k: self.number((*p, k), m[k], positive=True) for k in numbers}
            lt = LabwareType(
                id=type_id,
                kind=self.string((*p, "kind"), m["kind"], LABWARE_KINDS),
                rows=self.integer((*p, "rows"), m["rows"], 1),
                cols=self.integer((*p, "cols"), m["cols"], 1),
                a1_offset_mm=self.vector((*p, "a1_offset_mm"), m["a1_offset_mm"], 2, positive=True),  # type: ignore[arg-type]
                **vals,
            )
            last_x = lt.a1_offset_mm[0] + (lt.cols - 1) * lt.well_pitch_mm
            last_y = lt.a1_offset_mm[1] + (lt.rows - 1) * lt.well_pitch_mm
            if last_x >= lt.length_mm or last_y >= lt.width_mm:
                raise self.fail(
                    (*p, "well_pitch_mm"),
                    f"the last well ({last_x:.2f}, {last_y:.2f}) mm lies outside "
                    f"the {lt.length_mm} x {lt.width_mm} mm footprint",
                )
            if lt.well_depth_mm > lt.height_mm:
                raise self.fail(
                    (*p, "well_depth_mm"), f"{lt.well_depth_mm} mm is deeper than the labware ({lt.height_mm} mm)"
                )
            if lt.grasp_height_mm >= lt.height_mm:
                raise self.fail(
                    (*p, "grasp_height_mm"),
                    f"{lt.grasp_height_mm} mm is not below the labware's top ({lt.height_mm} mm)",
                )
            out[type_id] = lt
        return out

    def locations(
        self, value: Any, devices: dict[str, Device], types: dict[str, LabwareType], approach: tuple[float, ...]
    ) -> dict[str, Location]:
        if not isinstance(value, dict) or not value:
            raise self.fail(("locations",), f"expected a non-empty mapping, got {_kind(value)}")
        out = {}
        for loc_id, spec in value.items():
            p = ("locations", loc_id)
            m = self.mapping(p, spec, required=("kind", "pose", "accepts"), optional=("device", "frame", "approach"))
            device = self.string((*p, "device"), m["device"]) if "device" in m else None
            if device is not None and device not in devices:
                raise self.fail((*p, "device"), f"unknown device {device!r}; devices are: {', '.join(devices)}")
            pose = self.pose((*p, "pose"), m["pose"])
            if "frame" in m:
                frame = self.string((*p, "frame"), m["frame"])
                if frame not in devices:
                    raise self.fail(
                        (*p, "frame"), f"unknown frame {frame!r}; a frame is a device id ({', '.join(devices)})"
                    )
                pose = devices[frame].pose.compose(pose)
            accepts = self.string_list((*p, "accepts"), m["accepts"])
            for i, t in enumerate(accepts):
                if t not in types:
                    raise self.fail((*p, "accepts", i), f"unknown labware type {t!r}")
            kind = self.string((*p, "kind"), m["kind"], LOCATION_KINDS)
            if kind == "conveyor_station" and (device is None or devices[device].type != "conveyor"):
                raise self.fail((*p, "device"), "a conveyor_station must name its conveyor device")
            out[loc_id] = Location(
                id=loc_id,
                kind=kind,
                pose=pose,
                device=device,
                accepts=accepts,
                approach=self.vector((*p, "approach"), m["approach"], 3) if "approach" in m else approach,  # type: ignore[arg-type]
            )
        return out

    def inventory(
        self, value: Any, types: dict[str, LabwareType], locations: dict[str, Location]
    ) -> tuple[LabwareItem, ...]:
        if not isinstance(value, list):
            raise self.fail(("inventory",), f"expected a list of labware items, got {_kind(value)}")
        items: list[LabwareItem] = []
        seen: dict[str, dict[Any, int]] = {"id": {}, "location": {}, "barcode": {}, "aruco_id": {}}
        for i, spec in enumerate(value):
            p = ("inventory", i)
            m = self.mapping(p, spec, required=("id", "type", "location", "barcode", "aruco_id"))
            item = LabwareItem(
                id=self.string((*p, "id"), m["id"]),
                type=self.string((*p, "type"), m["type"]),
                location=self.string((*p, "location"), m["location"]),
                barcode=self.string((*p, "barcode"), str(m["barcode"])),
                aruco_id=self.integer((*p, "aruco_id"), m["aruco_id"], 0),
            )
            if item.type not in types:
                raise self.fail((*p, "type"), f"unknown labware type {item.type!r}; known: {', '.join(types)}")
            if item.location not in locations:
                raise self.fail((*p, "location"), f"unknown location {item.location!r}")
            if item.type not in locations[item.location].accepts:
                raise self.fail((*p, "location"), f"{item.location} does not accept {item.type}")
            for key in seen:
                v = getattr(item, key)
                if v in seen[key]:
                    raise self.fail((*p, key), f"{key} {v!r} is already used by inventory[{seen[key][v]}]")
                seen[key][v] = i
            items.append(item)
        return tuple(items)

    def resolve_file(self, rel: Path) -> Path:
        """A relative path: next to the YAML, then in its parent (a share dir's config/), then the share dir."""
        if rel.is_absolute():
            return rel
        here = self.path.resolve().parent
        candidates = [here / rel, here.parent / rel]
        try:
            from autolab.paths import share_dir

            candidates.append(share_dir() / rel)
        except FileNotFoundError:
            pass
        return next((c for c in candidates if c.exists()), candidates[0])

    def arm(self, devices: dict[str, Device]) -> tuple[ArmConfig, str]:
        dev = next(d for d in devices.values() if d.type == "arm")
        p = ("devices", dev.id, "params")
        m = self.mapping(
            p,
            dict(dev.params),
            required=(
                "urdf",
                "base_link",
                "tcp_link",
                "arm_joints",
                "finger_joints",
                "named_poses",
                "max_opening_m",
                "grip_force_n",
                "safe_height_m",
            ),
        )
        urdf_path = self.resolve_file(Path(self.string((*p, "urdf"), m["urdf"])))
        try:
            urdf_text = urdf_path.read_text()
        except OSError as exc:
            raise self.fail((*p, "urdf"), f"cannot read {urdf_path}: {exc.strerror or exc}") from None
        robot = parse_urdf(urdf_text, str(urdf_path))  # a UrdfError names the URDF file and element
        limits = {j.name: (j.lower, j.upper) for j in robot.movable_joints()}
        for key in ("base_link", "tcp_link"):
            if self.string((*p, key), m[key]) not in robot.links:
                raise self.fail((*p, key), f"link {m[key]!r} is not in {urdf_path.name}")
        joints = {}
        for key in ("arm_joints", "finger_joints"):
            joints[key] = self.string_list((*p, key), m[key])
            for i, j in enumerate(joints[key]):
                if j not in limits:
                    raise self.fail((*p, key, i), f"joint {j!r} is not a movable joint of {urdf_path.name}")
        named = {}
        poses = m["named_poses"]
        if not isinstance(poses, dict) or "home" not in poses:
            raise self.fail((*p, "named_poses"), "expected a mapping of named poses including 'home'")
        for pose_name, q in poses.items():
            pp = (*p, "named_poses", pose_name)
            vec = self.vector(pp, q, len(joints["arm_joints"]))
            for i, (jn, v) in enumerate(zip(joints["arm_joints"], vec, strict=True)):
                lo, hi = limits[jn]
                if not lo <= v <= hi:
                    raise self.fail((*pp, i), f"{v} is outside {jn}'s limits [{lo}, {hi}]")
            named[pose_name] = vec
        return ArmConfig(
            urdf_path=urdf_path,
            base_link=m["base_link"],
            tcp_link=m["tcp_link"],
            arm_joints=joints["arm_joints"],
            finger_joints=joints["finger_joints"],
            joint_limits=MappingProxyType({j: limits[j] for j in (*joints["arm_joints"], *joints["finger_joints"])}),
            named_poses=MappingProxyType(named),
            max_opening_m=self.number((*p, "max_opening_m"), m["max_opening_m"], positive=True),
            grip_force_n=self.number((*p, "grip_force_n"), m["grip_force_n"], positive=True),
            safe_height_m=self.number((*p, "safe_height_m"), m["safe_height_m"], positive=True),
            robot=robot,
        ), urdf_text


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


def _normalise(value: Any) -> Any:
    """A JSON-able, order-independent form (floats as floats, so 1 and 1.0 hash alike)."""
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)
