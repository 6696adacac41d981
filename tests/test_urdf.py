"""The one URDF reader: what it reads from the shipped arm, its defaults, and every refusal named."""

from __future__ import annotations

import math

import pytest

from autolab.model.errors import DescriptionError, UrdfError
from autolab.model.urdf import Mimic, Shape, load_urdf, parse_urdf
from autolab.paths import data_path

ARM = data_path("urdf", "arm.urdf")


def robot_xml(body: str, links: str = '<link name="a"/><link name="b"/>') -> str:
    return f'<robot name="r">{links}{body}</robot>'


def test_the_shipped_arm_is_read_with_limits_dynamics_mimic_and_geometry():
    robot = load_urdf(ARM)
    assert robot.name == "autolab_arm" and robot.root == "base_link" and robot.file == str(ARM)
    pan = robot.joints["shoulder_pan_joint"]
    assert (pan.type, pan.parent, pan.child) == ("revolute", "base_link", "shoulder_link")
    assert (pan.lower, pan.upper, pan.velocity, pan.effort) == (-6.2832, 6.2832, 3.1416, 150.0)
    assert (pan.damping, pan.friction) == (0.5, 0.0)
    assert pan.xyz == (0.0, 0.0, 0.1625) and pan.axis == (0.0, 0.0, 1.0)
    assert robot.joints["wrist_3_joint"].rpy == (1.570796327, 3.141592654, 3.141592654)
    right = robot.joints["finger_right_joint"]
    assert right.mimic == Mimic("finger_left_joint", 1.0, 0.0) and right.movable and not right.driven
    assert right.axis == (0.0, -1.0, 0.0) and (right.lower, right.upper) == (0.0, 0.055)
    assert not robot.joints["tcp_joint"].movable
    assert [j.name for j in robot.movable_joints()] == [
        "shoulder_pan_joint",
        "shoulder_lift_joint",
        "elbow_joint",
        "wrist_1_joint",
        "wrist_2_joint",
        "wrist_3_joint",
        "finger_left_joint",
        "finger_right_joint",
    ]
    upper_arm = robot.links["upper_arm_link"]
    assert upper_arm.collisions == (Shape("cylinder", (0.05, 0.33), (-0.2125, 0.0, 0.138), (0.0, 1.570796327, 0.0)),)
    assert upper_arm.visuals[0].size == (0.055, 0.425)
    assert upper_arm.inertial is not None and upper_arm.inertial.mass == 8.058
    assert upper_arm.inertial.diag == (0.0151, 0.1339, 0.1339)
    assert robot.links["gripper_base"].collisions[0].size == (0.05, 0.15, 0.07)
    assert robot.links["tcp"].inertial is None and robot.links["tcp"].collisions == ()


def test_defaults_follow_the_urdf_specification():
    robot = parse_urdf(
        robot_xml('<joint name="spin" type="continuous"><parent link="a"/><child link="b"/><axis xyz="0 0 2"/></joint>')
    )
    spin = robot.joints["spin"]
    assert spin.xyz == (0.0, 0.0, 0.0) and spin.rpy == (0.0, 0.0, 0.0)
    assert spin.axis == (0.0, 0.0, 1.0)  # normalised
    assert (spin.lower, spin.upper, spin.velocity, spin.effort) == (-math.inf, math.inf, math.inf, math.inf)
    assert (spin.damping, spin.friction, spin.mimic) == (0.0, 0.0, None)
    slide = parse_urdf(
        robot_xml('<joint name="s" type="prismatic"><parent link="a"/><child link="b"/><limit upper="0.2"/></joint>')
    ).joints["s"]
    assert slide.axis == (1.0, 0.0, 0.0) and (slide.lower, slide.upper, slide.velocity) == (0.0, 0.2, math.inf)
    follower = parse_urdf(
        robot_xml(
            '<joint name="j" type="continuous"><parent link="a"/><child link="b"/></joint>'
            '<joint name="k" type="continuous"><parent link="a"/><child link="c"/><mimic joint="j"/></joint>',
            links='<link name="a"/><link name="b"/><link name="c"/>',
        )
    ).joints["k"]
    assert follower.mimic == Mimic("j", 1.0, 0.0)


def test_every_collision_element_of_a_link_is_kept_in_order():
    links = """<link name="a"/><link name="b">
      <collision><geometry><box size="0.1 0.2 0.3"/></geometry></collision>
      <collision><origin xyz="0 0 1" rpy="0 0 0.5"/>
        <geometry><cylinder radius="0.1" length="0.4"/></geometry></collision>
      <collision><geometry><sphere radius="0.05"/></geometry></collision></link>"""
    robot = parse_urdf(robot_xml('<joint name="j" type="fixed"><parent link="a"/><child link="b"/></joint>', links))
    assert robot.links["b"].collisions == (
        Shape("box", (0.1, 0.2, 0.3)),
        Shape("cylinder", (0.1, 0.4), (0.0, 0.0, 1.0), (0.0, 0.0, 0.5)),
        Shape("sphere", (0.05,)),
    )


FIXED_AB = '<joint name="j" type="fixed"><parent link="a"/><child link="b"/></joint>'


@pytest.mark.parametrize(
    ("text", "element", "problem"),
    [
        (
            robot_xml(
                FIXED_AB,
                '<link name="a"/><link name="b"><collision><geometry><mesh filename="b.stl"/>'
                "</geometry></collision></link>",
            ),
            "link 'b' collision 0",
            "geometry <mesh> is not supported",
        ),
        (
            robot_xml(FIXED_AB, '<link name="a"/><link name="b"><visual><geometry/></visual></link>'),
            "link 'b' visual 0",
            "needs exactly one <geometry>",
        ),
        (
            robot_xml(
                FIXED_AB,
                '<link name="a"/><link name="b"><collision><geometry><cylinder radius="0.1"/>'
                "</geometry></collision></link>",
            ),
            "link 'b' collision 0",
            "<cylinder> needs length",
        ),
        (
            robot_xml(
                FIXED_AB,
                '<link name="a"/><link name="b"><inertial><mass value="1"/><inertia ixx="1" ixy="0.1"'
                ' iyy="1" izz="1"/></inertial></link>',
            ),
            "link 'b' inertial",
            "off-diagonal inertia ixy is not supported",
        ),
        (
            robot_xml('<joint name="j" type="floating"><parent link="a"/><child link="b"/></joint>'),
            "joint 'j'",
            "joint type 'floating' is not supported",
        ),
        (
            robot_xml('<joint name="j" type="revolute"><parent link="a"/><child link="b"/></joint>'),
            "joint 'j'",
            "a revolute joint needs <limit",
        ),
        (
            robot_xml('<joint name="j" type="fixed"><parent link="a"/><child link="x"/></joint>'),
            "joint 'j'",
            "link 'x' is not defined",
        ),
        (
            robot_xml('<joint name="j" type="fixed"><parent link="a"/><child link="b"/><origin xyz="0 1"/></joint>'),
            "joint 'j'",
            "origin@xyz: expected 3 numbers, got '0 1'",
        ),
        (
            robot_xml(
                '<joint name="j" type="revolute"><parent link="a"/><child link="b"/>'
                '<limit lower="x" upper="1"/></joint>'
            ),
            "joint 'j'",
            "limit@lower='x' is not a number",
        ),
        (
            robot_xml(
                '<joint name="j" type="revolute"><parent link="a"/><child link="b"/>'
                '<limit lower="1" upper="-1"/></joint>'
            ),
            "joint 'j'",
            "limit lower 1 is above upper -1",
        ),
        (
            robot_xml(
                '<joint name="j" type="continuous"><parent link="a"/><child link="b"/><axis xyz="0 0 0"/></joint>'
            ),
            "joint 'j'",
            "axis has zero length",
        ),
        (
            robot_xml(
                '<joint name="j" type="continuous"><parent link="a"/><child link="b"/><mimic joint="k"/></joint>'
            ),
            "joint 'j'",
            "mimics unknown joint 'k'",
        ),
        (
            robot_xml(FIXED_AB, '<link name="a"/><link name="b"/><link name="c"/>'),
            "robot",
            "expected one root link, found ['a', 'c']",
        ),
        (robot_xml(FIXED_AB, '<link name="a"/><link name="b"/><link name="a"/>'), "link 'a'", "is defined twice"),
        ("<model/>", "", "the root element is <model>, expected <robot>"),
    ],
)
def test_a_urdf_autolab_cannot_read_is_refused_naming_file_element_and_problem(text, element, problem):
    with pytest.raises(UrdfError) as err:
        parse_urdf(text, "cell/arm.urdf")
    e = err.value
    assert isinstance(e, DescriptionError) and e.file == "cell/arm.urdf" and e.element == element
    assert problem in e.problem and str(e).startswith("cell/arm.urdf: ") and problem in str(e)


def test_invalid_xml_and_a_missing_file_are_named_with_the_line(tmp_path):
    with pytest.raises(UrdfError, match=r"^arm\.urdf:3: not valid XML") as err:
        parse_urdf('<robot name="r">\n<link name="a">\n</robot>', "arm.urdf")
    assert err.value.line == 3
    with pytest.raises(UrdfError, match="cannot read"):
        load_urdf(tmp_path / "missing.urdf")
