"""Driver of the ALP-AR96, an ALP absorbance plate reader (photometer, 230-1000 nm filter wheel).

Everything but the model name is the common ALP instrument protocol
(docs/serial-protocols.md); results decode with `AlpInstrument.unflatten`.
"""

from __future__ import annotations

from autolab.devices.drivers.alp import AlpInstrument


class AlpPlateReader(AlpInstrument):
    device_type = "plate_reader"
    models = ("ALP-AR96",)
