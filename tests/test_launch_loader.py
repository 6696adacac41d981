"""The YAML launch frontend interpreter: arguments, substitutions, scoping, nodes, and refusals.

Plain Python: no rclpy, no processes. Launch files are written to tmp_path so
each test shows the exact YAML it specifies.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autolab.launcher import (
    LaunchArgumentError,
    LaunchFileError,
    NodeSpec,
    SubstitutionError,
    UnsupportedConstruct,
    load_launch_file,
)
from autolab.launcher.loader import parse_launch_arguments
from autolab.launcher.substitutions import Evaluator, Subst, parse
from autolab.paths import share_dir

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "t.launch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def node(plan, name: str) -> NodeSpec:
    return next(n for n in plan.nodes if n.name == name)


# --- substitutions -------------------------------------------------------------------

def test_substitution_grammar_splits_text_nested_and_quoted_arguments():
    frags = parse("a-$(var x)/$(env 'HOME DIR' \"$(var d)\")-z")
    assert frags[0] == "a-"
    assert frags[1] == Subst("var", (("x",),))
    assert frags[3].name == "env"
    assert frags[3].args[0] == ("HOME DIR",)
    assert frags[3].args[1] == (Subst("var", (("d",),)),)
    assert frags[-1] == "-z"


def test_env_substitution_uses_default_only_when_unset():
    ev = Evaluator({}, None, env={"SET": "yes"})
    assert ev.evaluate("$(env SET no)") == "yes"
    assert ev.evaluate("$(env UNSET fallback)") == "fallback"
    with pytest.raises(SubstitutionError, match="'UNSET' is not set"):
        ev.evaluate("$(env UNSET)")


def test_boolean_substitutions_follow_launch_truth_values():
    ev = Evaluator({"a": "true", "b": "0"}, None, env={})
    assert ev.evaluate("$(not $(var a))") == "false"
    assert ev.evaluate("$(and $(var a) $(var b))") == "false"
    assert ev.evaluate("$(or $(var a) $(var b))") == "true"
    assert ev.evaluate("$(equals $(var a) True)") == "true"
    assert ev.evaluate("$(not-equals 1.0 1)") == "false"
    with pytest.raises(SubstitutionError, match="true/false/1/0"):
        ev.evaluate("$(not maybe)")


def test_find_pkg_share_reads_the_ament_index_on_the_prefix_path(tmp_path, monkeypatch):
    prefix = tmp_path / "prefix"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "cell_extras").write_text("")
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{prefix}:{tmp_path / 'other'}")
    ev = Evaluator({}, None)
    assert ev.evaluate("$(find-pkg-share cell_extras)/launch") == f"{prefix}/share/cell_extras/launch"
    with pytest.raises(SubstitutionError, match="package 'nowhere' not found"):
        ev.evaluate("$(find-pkg-share nowhere)")


def test_find_pkg_share_of_autolab_is_the_package_share_dir():
    assert Evaluator({}, None).evaluate("$(find-pkg-share autolab)") == str(share_dir())


def test_malformed_substitutions_are_reported():
    with pytest.raises(SubstitutionError, match="unterminated"):
        parse("$(var x")
    with pytest.raises(SubstitutionError, match="unknown substitution"):
        Evaluator({}, None).evaluate("$(nonsense x)")


# --- arguments -------------------------------------------------------------------------

def test_arguments_take_defaults_and_command_line_overrides(tmp_path):
    f = write(tmp_path, """
        launch:
        - arg: {name: mode, default: fast}
        - arg: {name: label, default: "$(var mode)-cell"}
        - node: {pkg: autolab, exec: safety_node, name: "$(var label)"}
    """)
    assert load_launch_file(f).nodes[0].name == "fast-cell"
    assert load_launch_file(f, {"mode": "slow"}).nodes[0].name == "slow-cell"
    assert load_launch_file(f, {"label": "x"}).nodes[0].name == "x"


def test_missing_required_argument_names_it_and_the_line(tmp_path):
    f = write(tmp_path, """
        launch:
        - arg: {name: other, default: "1"}
        - arg: {name: device, description: the device id}
    """)
    with pytest.raises(LaunchArgumentError) as err:
        load_launch_file(f)
    assert f"{f}:3:" in str(err.value)
    assert "'device' is required" in str(err.value)


def test_argument_outside_its_choices_is_refused(tmp_path):
    f = write(tmp_path, """
        launch:
        - arg:
            name: backend
            default: sim
            choice: [{value: sim}, {value: serial}]
    """)
    assert load_launch_file(f, {"backend": "serial"}).configurations["backend"] == "serial"
    with pytest.raises(LaunchArgumentError, match="'tcp', not one of sim, serial"):
        load_launch_file(f, {"backend": "tcp"})


def test_undeclared_command_line_argument_is_warned_about(tmp_path):
    f = write(tmp_path, "launch:\n- arg: {name: a, default: '1'}\n")
    plan = load_launch_file(f, {"typo": "1"})
    assert any("typo" in w for w in plan.warnings)


def test_command_line_arguments_must_be_name_value_pairs():
    assert parse_launch_arguments(["a:=1", "b:=x:=y"]) == {"a": "1", "b": "x:=y"}
    with pytest.raises(LaunchArgumentError, match="name:=value"):
        parse_launch_arguments(["a=1"])


# --- conditions, groups, namespaces -------------------------------------------------------

def test_if_and_unless_select_entities(tmp_path):
    f = write(tmp_path, """
        launch:
        - arg: {name: gui, default: "false"}
        - node: {pkg: autolab, exec: safety_node, name: always}
        - node: {if: "$(var gui)", pkg: rviz2, exec: rviz2, name: rviz}
        - node: {unless: "$(var gui)", pkg: autolab, exec: safety_node, name: headless}
    """)
    assert [n.name for n in load_launch_file(f).nodes] == ["always", "headless"]
    assert [n.name for n in load_launch_file(f, {"gui": "true"}).nodes] == ["always", "rviz"]
    with pytest.raises(SubstitutionError) as err:
        load_launch_file(f, {"gui": "yes"})
    assert f"{f}:4:" in str(err.value) and "true/false/1/0" in str(err.value)


def test_group_namespaces_and_scoping(tmp_path):
    f = write(tmp_path, """
        launch:
        - let: {name: where, value: outside}
        - group:
            children:
            - push_ros_namespace: {namespace: cell1}
            - let: {name: where, value: inside}
            - node: {pkg: autolab, exec: safety_node, name: a}
            - node: {pkg: autolab, exec: safety_node, name: b, namespace: sub}
            - node: {pkg: autolab, exec: safety_node, name: c, namespace: /abs}
            - group:
                children:
                - push-ros-namespace: {namespace: inner}
                - node: {pkg: autolab, exec: safety_node, name: d}
        - node: {pkg: autolab, exec: safety_node, name: "root-$(var where)"}
    """)
    plan = load_launch_file(f)
    fq = {n.name: n.fully_qualified_name for n in plan.nodes}
    assert fq == {"a": "/cell1/a", "b": "/cell1/sub/b", "c": "/abs/c", "d": "/cell1/inner/d",
                  "root-outside": "/root-outside"}
    assert node(plan, "root-outside").namespace is None
    assert "-r" in node(plan, "a").ros_arguments() and "__ns:=/cell1" in node(plan, "a").ros_arguments()


def test_unscoped_group_leaks_its_configurations(tmp_path):
    f = write(tmp_path, """
        launch:
        - group:
            scoped: false
            children:
            - let: {name: x, value: leaked}
        - node: {pkg: autolab, exec: safety_node, name: "$(var x)"}
    """)
    assert load_launch_file(f).nodes[0].name == "leaked"


def test_include_passes_arguments_and_resolves_relative_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, """
        launch:
        - arg: {name: who, default: nobody}
        - node: {pkg: autolab, exec: safety_node, name: "$(var who)"}
        - let: {name: dir_of_child, value: "$(dirname)"}
    """, "sub/child.launch.yaml")
    f = write(tmp_path, """
        launch:
        - include:
            file: sub/child.launch.yaml
            arg: [{name: who, value: included}]
        - node: {pkg: autolab, exec: safety_node, name: "after-$(var who)"}
    """)
    plan = load_launch_file(f)
    assert [n.name for n in plan.nodes] == ["included", "after-included"]
    assert plan.configurations["dir_of_child"] == str(tmp_path / "sub")


def test_include_must_pass_its_files_required_arguments(tmp_path):
    write(tmp_path, "launch:\n- arg: {name: device}\n", "child.launch.yaml")
    f = write(tmp_path, """
        launch:
        - arg: {name: device, default: reader1}
        - include: {file: child.launch.yaml}
    """)
    with pytest.raises(LaunchArgumentError, match="needs argument 'device', which the `include` does not pass"):
        load_launch_file(f)


def test_include_cycle_is_refused(tmp_path):
    f = write(tmp_path, "launch:\n- include: {file: $(dirname)/t.launch.yaml}\n")
    with pytest.raises(LaunchFileError, match="include cycle"):
        load_launch_file(f)


# --- nodes: parameters, remaps, supervision attributes ---------------------------------------

def test_node_parameters_files_remaps_in_launch_ros_order(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters: {rate: 5}\n")
    f = write(tmp_path, f"""
        launch:
        - set_parameter: {{name: use_sim_time, value: "true"}}
        - set_remap: {{from: chatter, to: talk}}
        - node:
            pkg: autolab
            exec: safety_node
            name: s
            param:
            - {{name: workcell, value: /w.yaml}}
            - {{name: limits, param: [{{name: speed, value: 0.5}}, {{name: names, value: [a, b]}}]}}
            - {{from: {params}}}
            remap:
            - {{from: state, to: /other/state}}
            ros_args: --log-level debug
            args: --flag
    """)
    n = load_launch_file(f).nodes[0]
    assert n.parameters == [{"use_sim_time": "true"}, {"workcell": "/w.yaml"},
                            {"limits.speed": 0.5, "limits.names": ["a", "b"]}, params]
    assert n.ros_arguments() == [
        "--ros-args", "-r", "__node:=s", "-p", "use_sim_time:=true", "-p", "workcell:=/w.yaml",
        "-p", "limits.speed:=0.5", "-p", "limits.names:=[a, b]", "--params-file", str(params),
        "-r", "chatter:=talk", "-r", "state:=/other/state", "--log-level", "debug"]
    assert n.args == ["--flag"]


def test_set_parameter_applies_only_within_its_scope(tmp_path):
    f = write(tmp_path, """
        launch:
        - group:
            children:
            - set_parameter: {name: use_sim_time, value: "true"}
            - node: {pkg: autolab, exec: safety_node, name: inside}
        - node: {pkg: autolab, exec: safety_node, name: outside}
    """)
    plan = load_launch_file(f)
    assert node(plan, "inside").parameters == [{"use_sim_time": "true"}]
    assert node(plan, "outside").parameters == []


def test_supervision_attributes_are_read_and_typed(tmp_path):
    f = write(tmp_path, """
        launch:
        - arg: {name: again, default: "true"}
        - node:
            pkg: autolab
            exec: safety_node
            name: s
            output: screen
            respawn: $(var again)
            respawn_delay: 1.5
            respawn_max_retries: 3
            sigterm_timeout: "2"
            env: [{name: FOO, value: bar}]
        - executable: {cmd: "sleep 10", name: sleeper, on_exit: shutdown, output: log}
    """)
    plan = load_launch_file(f)
    s = plan.processes[0]
    assert (s.output, s.respawn, s.respawn_delay, s.respawn_max_retries, s.sigterm_timeout, s.env) == (
        "screen", True, 1.5, 3, 2.0, {"FOO": "bar"})
    sleeper = plan.processes[1]
    assert sleeper.cmd == ["sleep", "10"] and sleeper.required and sleeper.label == "sleeper"


def test_missing_parameter_file_is_named(tmp_path):
    f = write(tmp_path, """
        launch:
        - node: {pkg: autolab, exec: safety_node, param: [{from: /nonexistent/p.yaml}]}
    """)
    with pytest.raises(LaunchFileError, match="parameter file not found: /nonexistent/p.yaml"):
        load_launch_file(f)


# --- refusals --------------------------------------------------------------------------------

@pytest.mark.parametrize(("snippet", "message"), [
    ("- node_container: {pkg: rclcpp_components, exec: component_container, name: c}",
     "`node_container` is not supported"),
    ("- node: {pkg: autolab, exec: safety_node, name: \"$(command echo hi)\"}",
     r"\$\(command \.\.\.\) is not supported"),
    ("- let: {name: x, value: \"$(eval '1+1')\"}", r"\$\(eval \.\.\.\) is not supported"),
    ("- node: {pkg: autolab, exec: safety_node, launch-prefix: gdb}", "launch-prefix` is not supported"),
    ("- node: {pkg: autolab, exec: safety_node, respwan: \"true\"}", "does not take the attribute.*respwan"),
    ("- timer: {period: 1.0, children: []}", "`timer` is not supported"),
    ("- frobnicate: {x: 1}", "unknown or unsupported launch entity `frobnicate`"),
])
def test_unsupported_constructs_are_refused_by_name_with_file_and_line(tmp_path, snippet, message):
    f = write(tmp_path, "launch:\n- arg: {name: a, default: '1'}\n" + snippet + "\n")
    with pytest.raises(UnsupportedConstruct, match=message) as err:
        load_launch_file(f)
    assert str(err.value).startswith(f"{f}:3:")


def test_unquoted_boolean_for_a_string_attribute_is_refused_like_launch_yaml(tmp_path):
    f = write(tmp_path, "launch:\n- node: {pkg: autolab, exec: safety_node, respawn: true}\n")
    with pytest.raises(LaunchFileError, match=r"respawn` must be a string.*quote it"):
        load_launch_file(f)


def test_invalid_yaml_and_wrong_root_name_the_line(tmp_path):
    bad = write(tmp_path, "launch:\n- node: {pkg: autolab\n", "bad.launch.yaml")
    with pytest.raises(LaunchFileError, match="not valid YAML") as err:
        load_launch_file(bad)
    assert f"{bad}:" in str(err.value)
    wrong = write(tmp_path, "nodes: []\n", "wrong.launch.yaml")
    with pytest.raises(LaunchFileError, match="top-level key, `launch:`"):
        load_launch_file(wrong)


def test_python_and_xml_launch_files_are_refused(tmp_path):
    f = tmp_path / "x.launch.py"
    f.write_text("")
    with pytest.raises(UnsupportedConstruct, match="only YAML launch files"):
        load_launch_file(f)


# --- the repository's launch files ---------------------------------------------------------

CELL_NODES = {"/safety", "/sim", "/arm", "/conveyor", "/reader1", "/sealer1", "/incubator1",
              "/liquid_handler1", "/barcode1", "/vision", "/executive", "/recorder"}


def test_sim_launch_brings_every_contract_node_with_sim_time_set_once():
    plan = load_launch_file(REPO / "launch" / "sim.launch.yaml")
    assert {n.fully_qualified_name for n in plan.nodes} == CELL_NODES
    for n in plan.nodes:
        assert n.parameters[0] == {"use_sim_time": "true"}, n.name
    assert {n.executable for n in plan.nodes if n.name.endswith("1")} == {"instrument_node"}
    assert node(plan, "reader1").parameters[1] == {"type": "plate_reader"}
    assert node(plan, "safety").required and node(plan, "arm").respawn
    workcell = str(share_dir() / "config" / "workcell.yaml")
    sim = node(plan, "sim")
    assert sim.parameters[1:3] == [{"use_sim_time": False}, {"workcell": workcell}]
    assert sim.ros_arguments().index("use_sim_time:=false") > sim.ros_arguments().index("use_sim_time:=true")
    assert {"store_url": ""} in node(plan, "executive").parameters


def test_sim_launch_with_gui_adds_rviz_and_wall_clock_turns_sim_time_off():
    plan = load_launch_file(REPO / "launch" / "sim.launch.yaml", {"gui": "true", "use_sim_time": "false"})
    assert node(plan, "rviz2").package == "rviz2"
    assert "rviz2" in {n.name for n in load_launch_file(REPO / "launch" / "sim.launch.yaml",
                                                        {"headless": "false"}).nodes}
    assert node(plan, "safety").parameters[0] == {"use_sim_time": "false"}


def test_hardware_launch_runs_devices_on_serial_with_the_ports_file():
    plan = load_launch_file(REPO / "launch" / "hardware.launch.yaml")
    names = {n.fully_qualified_name for n in plan.nodes}
    assert names == CELL_NODES - {"/sim"}
    reader = node(plan, "reader1")
    assert {"backend": "serial"} in reader.parameters
    assert {"backend": "ros2_control"} in node(plan, "arm").parameters
    assert share_dir() / "config" / "params" / "serial.yaml" in reader.parameters


def test_device_launch_starts_one_named_device_and_safety():
    plan = load_launch_file(REPO / "launch" / "device.launch.yaml",
                            {"device": "reader1", "type": "plate_reader", "with_safety": "false"})
    assert [n.fully_qualified_name for n in plan.nodes] == ["/reader1"]
    assert {"type": "plate_reader"} in plan.nodes[0].parameters


def test_protocol_launch_includes_the_sim_cell_and_a_required_runner():
    plan = load_launch_file(REPO / "launch" / "protocol.launch.yaml", {"protocol": "/p.yaml"})
    assert {n.fully_qualified_name for n in plan.nodes} == CELL_NODES
    runner = plan.processes[-1]
    assert runner.required and runner.cmd[:5] == ["python3", "-m", "autolab.cli.main", "run", "/p.yaml"]
    hw = load_launch_file(REPO / "launch" / "protocol.launch.yaml", {"protocol": "/p.yaml", "sim": "false"})
    assert "/sim" not in {n.fully_qualified_name for n in hw.nodes}


# --- the command line -----------------------------------------------------------------------

def test_launch_command_prints_processes_with_options_after_the_file(capsys):
    from autolab.cli.main import main

    assert main(["launch", "sim.launch.yaml", "--print", "use_sim_time:=false"]) == 0
    out = capsys.readouterr().out
    safety = next(line for line in out.splitlines() if line.startswith("safety:"))
    assert "-r __node:=safety" in safety and "use_sim_time:=false" in safety


def test_launch_command_refuses_an_unsupported_file_with_exit_2_naming_the_line(tmp_path, capsys):
    from autolab.cli.main import main

    f = write(tmp_path, "launch:\n- node_container: {pkg: x, exec: y, name: c}\n")
    assert main(["launch", str(f)]) == 2
    assert f"{f}:2: `node_container` is not supported" in capsys.readouterr().err


def test_launch_command_lists_arguments_even_when_required_ones_are_missing(capsys):
    from autolab.cli.main import main

    assert main(["launch", "autolab", "device.launch.yaml", "--show-args"]) == 0
    out = capsys.readouterr().out
    assert "'device':" in out and "(required)" in out and "Valid choices are: ['sim', 'serial'" in out
