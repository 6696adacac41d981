"""The protocol format: parsing, JSON Schema, file:line:column errors, parameters, expansion."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from autolab.model.protocol import (
    ParameterError,
    ProtocolError,
    expand,
    expand_wells,
    load_protocol,
    parse_protocol,
    schema,
)

PROTOCOLS = sorted((Path(__file__).resolve().parents[1] / "protocols").glob("*.yaml"))

MINIMAL = """\
autolab_protocol: 1
name: tiny
parameters:
  volume_ul: {type: number, default: 50, minimum: 1, maximum: 300, unit: uL}
steps:
  - transfer: {id: load, labware: plate1, destination: liquid_handler1.nest}
  - dispense: {id: fill, labware: plate1, wells: "A1:A3", volume_ul: "${volume_ul}"}
"""


def error_of(text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_protocol(text, "bad.yaml")
    return info.value


def test_schema_is_valid_json_schema_and_accepts_every_example_protocol():
    jsonschema.Draft202012Validator.check_schema(schema())
    assert len(PROTOCOLS) >= 3
    for path in PROTOCOLS:
        import yaml

        jsonschema.validate(yaml.safe_load(path.read_text()), schema())
        proto = load_protocol(path)
        assert proto.steps and proto.name == path.stem


def test_unknown_step_kind_is_reported_at_its_line_and_column():
    err = error_of(MINIMAL.replace("  - transfer:", "  - tranfer:"))
    assert (err.file, err.line, err.column) == ("bad.yaml", 6, 5)
    assert "tranfer" in err.reason and "transfer" in err.reason
    assert str(err).startswith("bad.yaml:6:5: ")


def test_missing_required_field_names_the_field_and_the_step():
    err = error_of(MINIMAL.replace("destination: liquid_handler1.nest", "to: x"))
    assert err.line == 6
    assert "'destination' is required" in err.reason or "unknown key(s) to" in err.reason


def test_wrong_value_type_points_at_the_value():
    err = error_of(MINIMAL.replace('volume_ul: "${volume_ul}"', "volume_ul: lots"))
    assert (err.line, err.column) == (7, 70)  # the value `lots`
    assert "volume_ul" in err.reason


def test_yaml_syntax_error_gives_position():
    err = error_of("autolab_protocol: 1\nname: x\nsteps: [\n  - wait: {id: a, seconds: 1\n")
    assert err.line >= 4 and "YAML syntax" in err.reason


def test_duplicate_step_ids_are_refused_with_both_positions():
    err = error_of(MINIMAL.replace("id: fill", "id: load"))
    assert err.line == 7 and "duplicate step id 'load'" in err.reason and "line 6" in err.reason


def test_reference_to_unknown_parameter_is_refused():
    err = error_of(MINIMAL.replace("${volume_ul}", "${volume}"))
    assert err.line == 7 and "${volume}" in err.reason and "volume_ul" in err.reason


def test_condition_on_a_later_step_is_refused():
    text = MINIMAL + """\
  - if:
      id: check
      condition: {step: later, output: x, op: ">", value: 1}
      then:
        - wait: {id: w, seconds: 1}
  - wait: {id: later, seconds: 1}
"""
    err = error_of(text)
    assert err.line == 10 and "does not run before" in err.reason


def test_default_out_of_range_is_reported_at_the_default():
    err = error_of(MINIMAL.replace("default: 50", "default: 500"))
    assert err.line == 4 and "above the maximum" in err.reason


def test_parameters_are_typed_and_range_checked():
    proto = parse_protocol(MINIMAL)
    assert proto.bind({}) == {"volume_ul": 50.0}
    assert proto.bind({"volume_ul": "75"}) == {"volume_ul": 75.0}
    with pytest.raises(ParameterError, match="above the maximum 300"):
        proto.bind({"volume_ul": "301"})
    with pytest.raises(ParameterError, match="not a valid number"):
        proto.bind({"volume_ul": "much"})
    with pytest.raises(ParameterError, match="unknown parameter"):
        proto.bind({"volum_ul": 3})


def test_expansion_substitutes_typed_values_and_unrolls_loops():
    proto = load_protocol(PROTOCOLS[[p.stem for p in PROTOCOLS].index("serial_dilution")])
    steps = expand(proto, proto.bind({"carry_ul": 50}))
    carries = [s for top in steps for s in top.walk() if s.id == "carry"]
    assert len(carries) == 10
    assert carries[0].path == "dilute[0]/carry" and carries[0].fields["volume_ul"] == 50.0
    assert carries[3].fields["source_wells"] == "A4:H4" and carries[3].fields["wells"] == "A5:H5"


def test_round_trip_through_yaml_is_lossless():
    for path in PROTOCOLS:
        proto = load_protocol(path)
        again = parse_protocol(proto.to_yaml())
        assert again.to_dict() == proto.to_dict()


def test_well_ranges_go_column_by_column():
    assert expand_wells("A1:B2") == ["A1", "B1", "A2", "B2"]
    assert len(expand_wells("A1:H12")) == 96
    assert expand_wells("nonsense") == []


def test_published_schema_file_is_plain_json():
    from autolab.model.protocol import SCHEMA_PATH

    assert json.loads(SCHEMA_PATH.read_text())["$id"].endswith("protocol-1.json")
