"""The tracked inventory: checked moves with named errors, and items carried by a conveyor belt."""

from __future__ import annotations

import pytest

from autolab.model.errors import DestinationOccupied, NotAccepted, SourceEmpty, UnknownLocation, WrongLabware
from autolab.model.inventory import IN_GRIPPER, Inventory, TrackedItem
from autolab.model.workcell import load_workcell


@pytest.fixture
def inv() -> Inventory:
    return Inventory.from_workcell(load_workcell())


def test_initial_inventory_comes_from_the_description(inv):
    assert inv.at("hotel1.slot1").id == "plate1" and inv.at("hotel1.slot2").id == "plate2"
    assert inv.at("reader1.nest") is None


def test_transfer_checks_refuse_with_the_error_the_action_reports(inv):
    with pytest.raises(SourceEmpty, match="hotel1.slot3 is empty") as e:
        inv.check_transfer("hotel1.slot3", "reader1.nest")
    assert e.value.code == "SOURCE_EMPTY"
    with pytest.raises(WrongLabware, match="holds plate1, not plate2"):
        inv.check_transfer("hotel1.slot1", "reader1.nest", "plate2")
    with pytest.raises(DestinationOccupied, match="hotel1.slot2 already holds plate2") as e:
        inv.check_transfer("hotel1.slot1", "hotel1.slot2")
    assert e.value.code == "DESTINATION_OCCUPIED"
    with pytest.raises(UnknownLocation, match="'nowhere'"):
        inv.check_transfer("hotel1.slot1", "nowhere")
    # A reservoir is not accepted on a conveyor station (SBS plates only).
    with pytest.raises(NotAccepted, match="does not accept nest_12_reservoir_15ml"):
        inv.check_transfer("liquid_handler1.source", "conveyor.in")


def test_pick_and_place_update_the_location_and_version(inv):
    v0 = inv.version
    item = inv.check_transfer("hotel1.slot1", "reader1.nest", "plate1")
    inv.picked(item.id)
    assert inv.held().id == "plate1" and inv.at("hotel1.slot1") is None
    inv.placed(item.id, "reader1.nest")
    assert inv.at("reader1.nest").id == "plate1" and inv.held() is None
    assert inv.version > v0


def test_lost_item_has_no_location(inv):
    inv.lost("plate2")
    assert inv.get("plate2").location == "" and inv.at("hotel1.slot2") is None


def test_belt_carries_items_between_stations_and_tracks_them_in_between(inv):
    stations = {"conveyor.in": -0.3, "conveyor.out": 0.3}
    inv.add(TrackedItem("plate9", "corning_96_wellplate_360ul_flat", "conveyor.in"))
    assert inv.advance_belt(stations, 0.25) == ["plate9"]
    assert inv.get("plate9").location == "conveyor.belt"
    inv.advance_belt(stations, 0.347)  # odometry a few mm short of the station: within tolerance
    assert inv.get("plate9").location == "conveyor.out"
    # Small steps near a station add up: the item is not snapped back to the station each time.
    for _ in range(5):
        inv.advance_belt(stations, 0.004)
    assert inv.get("plate9").location == "conveyor.belt"
    assert inv.get("plate9").belt_position == pytest.approx(0.317)
    assert inv.get("plate1").location == "hotel1.slot1"  # items off the belt do not move


def test_spawned_item_cannot_take_an_occupied_location(inv):
    with pytest.raises(DestinationOccupied):
        inv.add(TrackedItem("plate9", "corning_96_wellplate_360ul_flat", "hotel1.slot1"))
    inv.add(TrackedItem("plate9", "corning_96_wellplate_360ul_flat", IN_GRIPPER))
    assert inv.held().id == "plate9"
