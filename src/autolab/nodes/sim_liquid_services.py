"""The simulated liquid world as ROS services, and the client instruments use to reach it.

The liquid handler fills a plate and the reader reads it later, in different
node processes, so the wells live in one place: the sim node calls
`attach_liquid_services(self)`, which serves

- `sim/liquids/transfer` (LiquidTransfer): dispense a reagent or move liquid between wells, atomically;
- `sim/liquids/get_contents` (GetWellContents): what the wells of a plate hold.

Run alone (`python -m autolab.nodes.sim_liquid_services`) it hosts the same
services on a node of its own, for tests and for cells without the MuJoCo sim.
`RosLiquids` is the instruments' side: the `LiquidAccess` of the sim backends.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from autolab.devices.errors import CommunicationError, LiquidHandlingError
from autolab.model.labware import DEFAULT_PLATE, LabwareError, Liquid, PlateGeometry, WellOverflow, WellUnderflow
from autolab.nodes.runtime import run_node
from autolab.sim.liquids import LiquidWorld
from autolab_interfaces.msg import WellContents
from autolab_interfaces.srv import GetWellContents, LiquidTransfer

TRANSFER = "sim/liquids/transfer"
GET_CONTENTS = "sim/liquids/get_contents"


def _workcell_geometries() -> tuple[dict[str, PlateGeometry], dict[str, PlateGeometry]]:
    """(labware id -> geometry, labware type -> geometry) from the workcell description, when there is one."""
    try:
        from autolab.model.workcell import load_workcell

        wc = load_workcell()
    except Exception:  # no description: every plate is the default 96-well plate
        return {}, {}
    by_type = {}
    for type_id, lt in wc.labware_types.items():
        try:
            by_type[type_id] = PlateGeometry.from_labware_type(lt)
        except LabwareError:
            continue
    by_id = {item.id: by_type[item.type] for item in wc.inventory if item.type in by_type}
    return by_id, by_type


def contents_msg(labware_id: str, well: str, liquid: Liquid, capacity_ul: float) -> WellContents:
    msg = WellContents()
    msg.labware_id = labware_id
    msg.well = well
    msg.volume_ul = float(liquid.volume_ul)
    msg.capacity_ul = float(capacity_ul)
    msg.components = list(liquid.amounts_nmol)
    msg.amounts_nmol = [float(v) for v in liquid.amounts_nmol.values()]
    return msg


def liquid_of(msg: WellContents) -> Liquid:
    return Liquid(msg.volume_ul, dict(zip(msg.components, msg.amounts_nmol, strict=False)))


class LiquidServices:
    """Serves one `LiquidWorld` on a node."""

    def __init__(
        self, node: Node, world: LiquidWorld | None = None, geometries: Mapping[str, PlateGeometry] | None = None
    ) -> None:
        self.node = node
        self.world = world or LiquidWorld()
        by_id, self.types = _workcell_geometries()
        self.geometries = dict(by_id if geometries is None else geometries)
        group = ReentrantCallbackGroup()
        node.create_service(LiquidTransfer, TRANSFER, self._on_transfer, callback_group=group)
        node.create_service(GetWellContents, GET_CONTENTS, self._on_get, callback_group=group)

    def _geometry(self, labware_id: str, labware_type: str) -> PlateGeometry:
        if labware_id in self.geometries:
            return self.geometries[labware_id]
        if not labware_type or labware_type == DEFAULT_PLATE.labware_type:
            return DEFAULT_PLATE
        if labware_type in self.types:
            return self.types[labware_type]
        raise LabwareError(f"unknown labware type {labware_type!r} for {labware_id!r}")

    def _on_transfer(self, req: LiquidTransfer.Request, res: LiquidTransfer.Response) -> LiquidTransfer.Response:
        try:
            dest_geo = self._geometry(req.dest_labware, req.labware_type)
            self.world.plate(req.dest_labware, dest_geo)
            if req.source_labware:
                self.world.plate(req.source_labware, self._geometry(req.source_labware, ""))
                self.world.transfer(
                    req.source_labware,
                    list(req.source_wells),
                    req.dest_labware,
                    list(req.dest_wells),
                    list(req.volumes_ul),
                )
            else:
                if len(req.reagent_components) != len(req.reagent_concentrations_um):
                    raise LabwareError("reagent_components and reagent_concentrations_um differ in length")
                composition = dict(zip(req.reagent_components, req.reagent_concentrations_um, strict=True))
                reagent = self.world.reagent(req.reagent, composition or None)
                self.world.dispense(req.dest_labware, list(req.dest_wells), reagent, list(req.volumes_ul))
            after = self.world.contents(req.dest_labware, list(req.dest_wells))
            res.dest_contents = [
                contents_msg(req.dest_labware, w, liq, dest_geo.well_volume_ul) for w, liq in after.items()
            ]
            res.error_code = LiquidTransfer.Response.OK
            res.message = f"{len(req.dest_wells)} well(s) of {req.dest_labware} filled"
        except WellOverflow as exc:
            res.error_code, res.message = LiquidTransfer.Response.OVERFLOW, str(exc)
        except WellUnderflow as exc:
            res.error_code, res.message = LiquidTransfer.Response.UNDERFLOW, str(exc)
        except LabwareError as exc:
            res.error_code, res.message = LiquidTransfer.Response.INVALID_REQUEST, str(exc)
        return res

    def _on_get(self, req: GetWellContents.Request, res: GetWellContents.Response) -> GetWellContents.Response:
        try:
            geo = self.world.plate(req.labware_id, self.geometries.get(req.labware_id)).geometry
            contents = self.world.contents(req.labware_id, list(req.wells))
            res.wells = [contents_msg(req.labware_id, w, liq, geo.well_volume_ul) for w, liq in contents.items()]
            res.success, res.message = True, f"{len(res.wells)} well(s)"
        except LabwareError as exc:
            res.success, res.message = False, str(exc)
        return res


def attach_liquid_services(node: Node, world: LiquidWorld | None = None) -> LiquidServices:
    """Serve the liquid world on `node` (the sim node calls this on itself)."""
    return LiquidServices(node, world)


class RosLiquids:
    """`LiquidAccess` over the services, for the sim backends of instrument nodes.

    Called from an action's execute thread or the state timer (a liquid handler moves
    each column's liquid when whichever observes it first sees the column done), on a
    multi-threaded executor: it waits on an event, bounded by `timeout_s`, while the
    executor's other threads deliver the response. Never call it from a single-threaded
    executor's callback.
    """

    def __init__(self, node: Node, timeout_s: float = 5.0) -> None:
        group = ReentrantCallbackGroup()
        self._transfer = node.create_client(LiquidTransfer, TRANSFER, callback_group=group)
        self._get = node.create_client(GetWellContents, GET_CONTENTS, callback_group=group)
        self.timeout_s = timeout_s
        self._geometries = _workcell_geometries()[0]

    def _call(self, client: Any, request: Any) -> Any:
        if not client.wait_for_service(timeout_sec=self.timeout_s):
            raise CommunicationError(f"liquid service {client.srv_name} is not available (is the sim running?)")
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(self.timeout_s):
            client.remove_pending_request(future)
            raise CommunicationError(f"no answer from {client.srv_name} within {self.timeout_s:.1f} s")
        return future.result()

    def _send(self, req: LiquidTransfer.Request) -> None:
        res = self._call(self._transfer, req)
        if res.error_code != LiquidTransfer.Response.OK:
            raise LiquidHandlingError(res.message)

    def dispense(
        self,
        dest: str,
        wells: Sequence[str],
        reagent_name: str,
        composition_um: Mapping[str, float] | None,
        volumes_ul: Sequence[float],
    ) -> None:
        req = LiquidTransfer.Request(
            dest_labware=dest, dest_wells=list(wells), reagent=reagent_name, volumes_ul=[float(v) for v in volumes_ul]
        )
        if composition_um:
            req.reagent_components = list(composition_um)
            req.reagent_concentrations_um = [float(v) for v in composition_um.values()]
        self._send(req)

    def transfer(
        self,
        source: str,
        source_wells: Sequence[str],
        dest: str,
        dest_wells: Sequence[str],
        volumes_ul: Sequence[float],
    ) -> None:
        self._send(
            LiquidTransfer.Request(
                source_labware=source,
                source_wells=list(source_wells),
                dest_labware=dest,
                dest_wells=list(dest_wells),
                volumes_ul=[float(v) for v in volumes_ul],
            )
        )

    def contents(self, labware_id: str) -> tuple[PlateGeometry, dict[str, Liquid]]:
        res = self._call(self._get, GetWellContents.Request(labware_id=labware_id))
        if not res.success:
            raise LiquidHandlingError(res.message)
        geometry = self._geometries.get(labware_id, DEFAULT_PLATE)
        return geometry, {m.well: liquid_of(m) for m in res.wells}


class SimLiquidsNode(Node):
    """A node that only hosts the liquid world (when the MuJoCo sim node is not running)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("sim_liquids", **kwargs)
        self.liquid_services = attach_liquid_services(self)


NODE_CLASS = SimLiquidsNode


def main(args: list[str] | None = None) -> int:
    return run_node(SimLiquidsNode, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
