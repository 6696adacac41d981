"""Driver of the ALP-IC22, an ALP plate incubator with shaker and 22 storage slots.

Everything but the model name is the common ALP instrument protocol
(docs/serial-protocols.md); results decode with `AlpInstrument.unflatten`.
"""

from __future__ import annotations

from autolab.devices.drivers.alp import AlpInstrument


class AlpIncubator(AlpInstrument):
    device_type = "incubator"
    models = ("ALP-IC22",)
