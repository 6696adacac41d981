"""Headless rendering of the overhead camera, with the OpenGL backend chosen before MuJoCo loads one.

MuJoCo picks its GL backend from MUJOCO_GL once per process, so the choice is
made up front: the user's MUJOCO_GL if set; otherwise EGL, falling back to
OSMesa, each probed in a short-lived subprocess so a broken driver cannot take
the simulation down with it.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from autolab.sim.errors import RenderingUnavailable

_PROBE = (
    "import mujoco\n"
    "m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=\"1\"/></worldbody></mujoco>')\n"
    "r = mujoco.Renderer(m, 8, 8); d = mujoco.MjData(m); r.update_scene(d); r.render(); r.close()\n"
)


def select_gl_backend(candidates: tuple[str, ...] = ("egl", "osmesa"), timeout_s: float = 30.0) -> str:
    """Set MUJOCO_GL to a backend that renders here, and return it; RenderingUnavailable if none does."""
    chosen = os.environ.get("MUJOCO_GL")
    tries = (chosen,) if chosen else candidates
    errors = []
    for backend in tries:
        env = dict(os.environ, MUJOCO_GL=backend)
        env.pop("PYOPENGL_PLATFORM", None)
        try:
            res = subprocess.run(
                [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            errors.append(f"{backend}: timed out")
            continue
        if res.returncode == 0:
            os.environ["MUJOCO_GL"] = backend
            return backend
        errors.append(f"{backend}: {(res.stderr.strip().splitlines() or ['failed'])[-1]}")
    hint = (
        "MUJOCO_GL is set; unset it to let autolab try egl then osmesa"
        if chosen
        else "install libegl1 + libegl-mesa0 (EGL) or libosmesa6 (OSMesa)"
    )
    raise RenderingUnavailable(f"no headless OpenGL backend works ({'; '.join(errors)}); {hint}")


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of a MuJoCo camera (square pixels, principal point at the centre)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fovy(cls, width: int, height: int, fovy_deg: float) -> Intrinsics:
        f = (height / 2) / math.tan(math.radians(fovy_deg) / 2)
        return cls(width, height, f, f, (width - 1) / 2, (height - 1) / 2)

    def k(self) -> list[float]:
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]


class CameraRenderer:
    """Renders one named camera of a model; create, use and close it on the same thread (GL contexts are)."""

    def __init__(self, model, camera: str, width: int, height: int) -> None:
        import mujoco

        _follow_mujoco_gl()
        self.camera = camera
        try:
            self._renderer = mujoco.Renderer(model, height, width)
        except Exception as exc:  # MuJoCo raises FatalError/RuntimeError/ImportError depending on the backend
            raise RenderingUnavailable(
                f"cannot create a {os.environ.get('MUJOCO_GL', 'default')} OpenGL context: {exc}; set MUJOCO_GL "
                "(egl or osmesa) in the environment before the process starts"
            ) from None
        opt = self._renderer.scene.flags
        opt[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        opt[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        opt[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
        self.intrinsics = Intrinsics.from_fovy(width, height, float(model.cam_fovy[model.camera(camera).id]))

    def render(self, data) -> np.ndarray:
        """An RGB image, uint8, shape (height, width, 3), row 0 at the top."""
        self._renderer.update_scene(data, camera=self.camera)
        return self._renderer.render()

    def close(self) -> None:
        self._renderer.close()


def _follow_mujoco_gl() -> None:
    """Make MuJoCo use the MUJOCO_GL chosen here even if `mujoco` was imported before it was set.

    MuJoCo reads MUJOCO_GL when its GL-context module is first imported; re-import
    that module when the choice differs (no context exists yet at this point).
    """
    import importlib

    try:
        from mujoco.rendering.classic import gl_context
    except ImportError:  # other MuJoCo layouts read the variable at Renderer creation
        return
    wanted = os.environ.get("MUJOCO_GL", "").lower().strip()
    if getattr(gl_context, "_MUJOCO_GL", wanted) != wanted:
        importlib.reload(gl_context)
