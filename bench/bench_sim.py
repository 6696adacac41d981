"""Real-time factor of the simulated cell, headless: raw MuJoCo vs the whole cell, without and with camera.

Run: .venv/bin/python bench/bench_sim.py [--seconds 10] [--camera-seconds 3]

All three figures come from the same model in the same run, so their ratios
say what the cell's control layer and the camera cost on top of raw physics:
- raw: `mujoco.mj_step` on the generated model, arm servos holding home;
- cell: `CellSim.step` with the arm sweeping back and forth and the belt
  carrying a plate (trajectory interpolation, gripper, belt control every step);
- cell + camera: the same, rendering the 640x480 overhead camera at 10 Hz of
  simulated time (MUJOCO_GL chosen as the sim node does: egl, else osmesa).
Real-time factor = simulated seconds / wall seconds (higher is faster).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def raw_rtf(sim, seconds: float) -> float:
    import mujoco

    m = sim.model
    d = mujoco.MjData(m)
    d.qpos[:] = sim.data.qpos
    d.ctrl[:] = sim.data.ctrl
    mujoco.mj_forward(m, d)
    n = round(seconds / m.opt.timestep)
    t0 = time.perf_counter()
    for _ in range(n):
        mujoco.mj_step(m, d)
    return n * m.opt.timestep / (time.perf_counter() - t0)


def cell_rtf(sim, seconds: float, camera=None, camera_hz: float = 10.0) -> tuple[float, int]:
    from autolab.sim.trajectory import TrajectoryPoint

    home = np.array(sim.workcell.arm.named_poses["home"])
    swing = home + np.array([1.2, 0.2, -0.3, 0.1, 0.0, 0.8])
    chunk = max(1, round(0.01 / sim.timestep))
    end = sim.time + seconds
    next_frame, frames, leg = sim.time, 0, 0
    t0 = time.perf_counter()
    start = sim.time
    while sim.time < end:
        if not sim.trajectory_active:
            target = swing if leg % 2 == 0 else home
            sim.follow_trajectory(list(sim.arm_joints), [TrajectoryPoint(1.5, list(target), [0.0] * 6)])
            leg += 1
        sim.step(chunk)
        if camera is not None and sim.time >= next_frame:
            camera.render(sim.data)
            frames += 1
            next_frame += 1.0 / camera_hz
    return (sim.time - start) / (time.perf_counter() - t0), frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="simulated seconds for raw and cell runs")
    ap.add_argument("--camera-seconds", type=float, default=3.0, help="simulated seconds with the camera on")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of raw and cell (median reported)")
    ap.add_argument("--no-camera", action="store_true")
    args = ap.parse_args()

    backend = None
    if not args.no_camera:
        from autolab.sim.camera import select_gl_backend
        from autolab.sim.errors import RenderingUnavailable

        try:
            backend = select_gl_backend()
        except RenderingUnavailable as exc:
            print(f"camera skipped: {exc}")
    from autolab.model.workcell import load_workcell
    from autolab.sim.engine import CellSim

    wc = load_workcell()
    sim = CellSim(wc)
    sim.spawn("bench_plate", "corning_96_wellplate_360ul_flat", "conveyor.in")
    sim.conveyor_command(0.6, 0.1)
    m = sim.model
    print(
        f"model: {m.nbody} bodies, {m.ngeom} geoms, {m.nv} dofs, {m.nu} actuators, dt {m.opt.timestep * 1e3:g} ms; "
        f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}"
    )

    # Interleaved repeats, median of each: on a shared machine the load changes between runs.
    raws, cells = [], []
    for _ in range(args.repeats):
        raws.append(raw_rtf(sim, args.seconds))
        cells.append(cell_rtf(sim, args.seconds)[0])
    raw, cell = float(np.median(raws)), float(np.median(cells))
    spread = f"median of {args.repeats}"
    rows = [("raw mj_step", raw, spread), ("cell (arm + belt)", cell, spread)]
    if backend:
        from autolab.sim.camera import CameraRenderer

        cam = CameraRenderer(m, "camera1", 640, 480)
        try:
            cam_rtf, frames = cell_rtf(sim, args.camera_seconds, cam)
        finally:
            cam.close()
        rows.append((f"cell + camera 10 Hz ({backend})", cam_rtf, f"{frames} frames"))
    print(f"{'configuration':34s} {'real-time factor':>17s} {'vs raw':>8s}")
    for name, rtf, note in rows:
        print(f"{name:34s} {rtf:17.2f} {rtf / raw:8.2f}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
