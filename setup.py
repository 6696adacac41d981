"""ament_python package `autolab` (sources in src/autolab)."""

import os

from setuptools import find_packages, setup

PACKAGE = "autolab"

# Node executables, so that `ros2 run autolab <name>` works after colcon build.
NODES = {
    "safety_node": "autolab.nodes.safety:main",
    "sim_node": "autolab.nodes.sim:main",
    "arm_node": "autolab.nodes.arm:main",
    "conveyor_node": "autolab.nodes.conveyor:main",
    "instrument_node": "autolab.nodes.instrument:main",
    "vision_node": "autolab.nodes.vision:main",
    "executive_node": "autolab.nodes.executive:main",
    "recorder_node": "autolab.nodes.recorder:main",
}


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing `folder` recursively under share/autolab."""
    out = []
    for dirpath, _dirs, files in os.walk(folder):
        paths = [os.path.join(dirpath, f) for f in files if not f.endswith((".pyc",))]
        if paths:
            out.append((os.path.join("share", PACKAGE, dirpath), paths))
    return out


data_files = [
    ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
    ("share/" + PACKAGE, ["package.xml"]),
]
for folder in ("launch", "config", "urdf", "sim", "protocols"):
    data_files += tree(folder)

setup(
    name=PACKAGE,
    version="0.1.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    package_data={"autolab": ["**/*.json", "**/*.yaml", "**/*.html", "**/*.js", "**/*.css", "**/*.xml", "**/*.mako", "**/*.ini"]},
    data_files=data_files,
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="autolab developers",
    maintainer_email="dev@autolab.invalid",
    description="Laboratory workcell control on ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["autolab = autolab.cli.main:main"]
        + [f"{name} = {target}" for name, target in NODES.items()],
    },
)
