"""Devices: where models run. ``LocalDevice`` in process, ``RemoteDevice`` over gRPC.

>>> dev = edgesnn.devices.connect("127.0.0.1:50051")      # doctest: +SKIP
>>> s = dev.open_session(dev.load_model("model.esnn"))
>>> y = s.step(x)["out"]                                   # as with a local session
"""

from edgesnn.devices.base import Capabilities as Capabilities
from edgesnn.devices.base import Device as Device
from edgesnn.devices.base import DeviceSession as DeviceSession
from edgesnn.devices.base import ModelInfo as ModelInfo
from edgesnn.devices.local import LocalDevice as LocalDevice
from edgesnn.devices.remote import RemoteDevice as RemoteDevice
from edgesnn.devices.remote import RemoteSession as RemoteSession
from edgesnn.devices.remote import connect as connect

__all__ = ["Capabilities", "Device", "DeviceSession", "LocalDevice", "ModelInfo", "RemoteDevice", "RemoteSession",
           "connect"]  # fmt: skip
