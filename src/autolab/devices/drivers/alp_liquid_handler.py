"""Driver of the ALP-LH8, an ALP 8-channel liquid handler.

Everything but the model name is the common ALP instrument protocol
(docs/serial-protocols.md); results decode with `AlpInstrument.unflatten`.
"""

from __future__ import annotations

from autolab.devices.drivers.alp import AlpInstrument


class AlpLiquidHandler(AlpInstrument):
    device_type = "liquid_handler"
    models = ("ALP-LH8",)
    list_keys = frozenset({
        "dest_wells", "source_wells", "volume_ul", "components", "concentrations_um",
        "wells_done", "volumes_done_ul", "source_wells_done",  # what the head really did (complete or aborted)
    })
