"""Driver of the ALP-HS1, an ALP heat sealer with a heated platen.

Everything but the model name is the common ALP instrument protocol
(docs/serial-protocols.md); results decode with `AlpInstrument.unflatten`.
"""

from __future__ import annotations

from autolab.devices.drivers.alp import AlpInstrument


class AlpSealer(AlpInstrument):
    device_type = "sealer"
    models = ("ALP-HS1",)
