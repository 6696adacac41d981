"""ArUco markers on labware tops: the dictionary, marker images and their physical size.

The simulation textures each plate's top with its marker and the vision node
detects them, so both read the dictionary and the side length from here.
The marker is centred on the labware's top face (its face LABEL_THICKNESS_M
above it), its image x axis along the labware's +x (long axis) and its image
up along the labware's +y (row A).
"""

from __future__ import annotations

import numpy as np

#: OpenCV's predefined dictionary name and id range.
DICTIONARY_NAME = "DICT_4X4_50"
DICTIONARY_SIZE = 50
#: Side length of the printed marker (black border included), metres.
MARKER_SIDE_M = 0.06
#: White quiet zone around the marker on the label, metres (each side).
QUIET_ZONE_M = 0.008
#: Cells across the marker including its one-cell black border (4x4 data + 2).
MARKER_CELLS = 6
#: Thickness of the label: the marker's face lies this far above the labware's top face.
LABEL_THICKNESS_M = 0.0004


def dictionary():
    """The cv2.aruco dictionary (imported lazily: the sim can run without OpenCV until markers are drawn)."""
    import cv2

    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, DICTIONARY_NAME))


def marker_image(marker_id: int, pixels_per_cell: int = 10, quiet_zone: bool = True) -> np.ndarray:
    """The marker as a uint8 greyscale image (0 black, 255 white), optionally with its white quiet zone.

    With the quiet zone, the image is the whole label (`label_side_m`), so the quiet zone must be a whole
    number of pixels (pixels_per_cell a multiple of 5): a rounded one would print the marker at the wrong
    size, and every pose seen from it at the wrong distance.
    """
    import cv2

    if not 0 <= marker_id < DICTIONARY_SIZE:
        raise ValueError(f"ArUco id {marker_id} is outside {DICTIONARY_NAME} (0..{DICTIONARY_SIZE - 1})")
    side = MARKER_CELLS * pixels_per_cell
    img = cv2.aruco.generateImageMarker(dictionary(), marker_id, side, borderBits=1)
    if not quiet_zone:
        return img
    pad = QUIET_ZONE_M / MARKER_SIDE_M * side
    if abs(pad - round(pad)) > 1e-6:
        raise ValueError(f"a quiet zone of {pad:g} pixels is not whole; use pixels_per_cell a multiple of 5")
    return np.pad(img, round(pad), constant_values=255)


def label_side_m() -> float:
    """Side of the square label (marker plus quiet zone) textured onto the labware top."""
    return MARKER_SIDE_M + 2 * QUIET_ZONE_M
