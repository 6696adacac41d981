"""Pick-and-place benchmark: cycle time (sim and wall seconds) and placement error over many transfers.

Runs the arm frontend, planner and engine backend against the MuJoCo cell
in-process (the same code path as the arm node minus DDS), moving one plate
back and forth between two nests, and prints mean / p95 / max of:
- cycle time of one transfer in simulated seconds (what the cell would take)
  and in wall seconds (planning + simulation on this machine), with their ratio;
- planning time per transfer (wall);
- placement error against the destination's nominal pose, in mm and degrees,
  from the simulation's ground truth.

    .venv/bin/python bench/bench_motion.py [--transfers 20] [--a reader1.nest] [--b sealer1.nest]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np

from autolab.devices.arm import ArmController, EngineArmBackend
from autolab.devices.planner import ArmModel, LabwareShape
from autolab.model.inventory import Inventory, TrackedItem
from autolab.model.workcell import load_workcell
from autolab.sim.engine import CellSim


def stats(values: list[float]) -> str:
    arr = np.asarray(values)
    return f"mean {arr.mean():8.3f}   p95 {np.percentile(arr, 95):8.3f}   max {arr.max():8.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transfers", type=int, default=20)
    ap.add_argument("--a", default="reader1.nest", help="first location (the plate starts here)")
    ap.add_argument("--b", default="sealer1.nest", help="second location")
    ap.add_argument("--velocity-scale", type=float, default=1.0)
    ns = ap.parse_args(argv)

    wc = load_workcell()
    sim = CellSim(wc)
    item, type_id = "bench_plate", "corning_96_wellplate_360ul_flat"
    sim.spawn(item, type_id, ns.a)
    sim.advance(0.2)
    model = ArmModel(wc)
    backend = EngineArmBackend(sim, tuple(model.chain.joint_names))
    inventory = Inventory.from_workcell(wc)
    inventory.add(TrackedItem(item, type_id, ns.a))
    ctl = ArmController(model, backend, inventory, wc, backend.locate, sleep=lambda: backend.step(0.01))

    plan_times: list[float] = []
    real_plan = ctl.planner.plan_transfer

    def timed_plan(*args, **kwargs):
        t = time.perf_counter()
        try:
            return real_plan(*args, **kwargs)
        finally:
            plan_times.append(time.perf_counter() - t)

    ctl.planner.plan_transfer = timed_plan  # type: ignore[method-assign]

    sim_s, wall_s, err_mm, err_deg = [], [], [], []
    here, there = ns.a, ns.b
    shape = LabwareShape.of(wc.labware_types[type_id])
    print(f"{ns.transfers} transfers of a {shape.length * 1000:.2f} x {shape.width * 1000:.2f} mm plate "
          f"between {ns.a} and {ns.b} (velocity scale {ns.velocity_scale})")
    for k in range(ns.transfers):
        t_sim, t_wall = sim.time, time.perf_counter()
        out = ctl.transfer(here, there, item, lambda: False, lambda *_: None, ns.velocity_scale)
        if not out.ok:
            print(f"transfer {k + 1} failed: {out.code}: {out.message}", file=sys.stderr)
            return 1
        sim_s.append(sim.time - t_sim)
        wall_s.append(time.perf_counter() - t_wall)
        st = sim.labware_status([item])[0]
        w, x, y, z = st.quat_wxyz
        yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        p = wc.locations[there].pose
        err_mm.append(1000 * math.dist(st.position, (p.x, p.y, p.z)))
        err_deg.append(abs(math.degrees(math.remainder(yaw - p.yaw, math.pi))))
        here, there = there, here

    print(f"cycle time, sim s     {stats(sim_s)}")
    print(f"cycle time, wall s    {stats(wall_s)}")
    print(f"planning, wall s      {stats(plan_times)}")
    print(f"placement error, mm   {stats(err_mm)}")
    print(f"placement error, deg  {stats(err_deg)}")
    print(f"sim / wall speed      {statistics.fmean(sim_s) / statistics.fmean(wall_s):.2f}x real time "
          f"(planning is {100 * sum(plan_times) / sum(wall_s):.0f} % of wall time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
