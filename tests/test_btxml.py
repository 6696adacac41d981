"""BehaviorTree.CPP v4 XML: Groot2-compatible export, lossless round trip, positioned import errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from autolab.executive.btxml import NODES, export_xml, import_xml
from autolab.executive.errors import BTXMLError
from autolab.model.protocol import load_protocol

PROTOCOLS = sorted((Path(__file__).resolve().parents[1] / "protocols").glob("*.yaml"))


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_every_example_protocol_round_trips_without_loss(path):
    proto = load_protocol(path)
    again = import_xml(export_xml(proto), "x.xml")
    assert again.to_dict() == proto.to_dict()
    assert export_xml(again) == export_xml(proto)


def test_export_is_btcpp_v4_with_a_tree_nodes_model_declaring_every_custom_node_and_port():
    root = ET.fromstring(export_xml(load_protocol(PROTOCOLS[0])))
    assert root.tag == "root" and root.get("BTCPP_format") == "4"
    tree = root.find("BehaviorTree")
    assert tree is not None and root.get("main_tree_to_execute") == tree.get("ID")
    model = {el.get("ID"): el for el in root.find("TreeNodesModel")}
    used = {el.tag for el in tree.iter()} - {"BehaviorTree", "Sequence", "Parallel", "Fallback"}
    assert used <= set(model), f"nodes used but not declared: {used - set(model)}"
    for nid, (_kind, category, ports) in NODES.items():
        assert model[nid].tag == category
        assert {p.get("name") for p in model[nid].findall("input_port")} == set(ports)
    # every attribute of a custom node is a declared port (Groot2 refuses others)
    for el in tree.iter():
        if el.tag in model:
            declared = {p.get("name") for p in model[el.tag].findall("input_port")} | {"name"}
            assert set(el.keys()) <= declared


def test_edits_made_in_groot_come_back_as_protocol_changes():
    proto = load_protocol(PROTOCOLS[[p.stem for p in PROTOCOLS].index("plate_preparation")])
    xml = export_xml(proto).replace('volume_ul="${volume_ul}"', 'volume_ul="75"')
    edited = import_xml(xml)
    assert edited.step("fill").fields["volume_ul"] == 75


def test_unknown_node_is_reported_with_its_line_and_column():
    xml = export_xml(load_protocol(PROTOCOLS[0])).replace("<Transfer ", "<Teleport ", 1)
    with pytest.raises(BTXMLError) as info:
        import_xml(xml, "edited.xml")
    line = next(i for i, text in enumerate(xml.splitlines(), 1) if "<Teleport " in text)
    assert info.value.line == line and info.value.column > 1
    assert "unknown node <Teleport>" in str(info.value) and str(info.value).startswith(f"edited.xml:{line}:")


def test_undeclared_port_and_bad_number_are_refused():
    xml = export_xml(load_protocol(PROTOCOLS[0]))
    with pytest.raises(BTXMLError, match="has no port 'speed'"):
        import_xml(xml.replace("<Transfer ", '<Transfer speed="3" ', 1))
    with pytest.raises(BTXMLError, match="volume_ul"):
        import_xml(xml.replace('volume_ul="${volume_ul}"', 'volume_ul="lots"'))


def test_malformed_xml_gives_position():
    with pytest.raises(BTXMLError) as info:
        import_xml('<root BTCPP_format="4">\n  <BehaviorTree ID="x">\n</root>\n', "broken.xml")
    assert info.value.line == 3 and "XML syntax" in info.value.reason
