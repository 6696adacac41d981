"""Where the package's data (launch/, config/, urdf/, sim/, protocols/) lives.

Installed by colcon, it is share/autolab; in the embedded set-up it is this
checkout, registered in the venv's ament index by scripts/setup.sh. Falling back
to the checkout keeps tests and tools working from a bare `pip install -e .`.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]


def share_dir() -> Path:
    """The autolab share directory."""
    try:
        from ament_index_python.packages import get_package_share_directory

        if os.environ.get("AMENT_PREFIX_PATH"):
            return Path(get_package_share_directory("autolab"))
    except Exception:  # not registered or ament_index_python missing
        pass
    if (_CHECKOUT / "package.xml").is_file():
        return _CHECKOUT
    raise FileNotFoundError(
        "cannot find the autolab share directory: neither the ament index nor a source checkout has it"
    )


def data_path(*parts: str) -> Path:
    """A path under the share directory, e.g. data_path('config', 'workcell.yaml')."""
    return share_dir().joinpath(*parts)
