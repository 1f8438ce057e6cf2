"""Devices: where models run. ``LocalDevice`` in process, ``RemoteDevice`` over gRPC.

>>> dev = edgesnn.devices.connect("127.0.0.1:50051")      # doctest: +SKIP
>>> m = dev.load("model.esnn")                             # a DeviceModel: m.inputs, m.labels, ...
>>> s = m.session(batch=1)                                 # as model.session(...) locally
>>> y = s.step(x)["out"]
"""

from edgesnn.devices.base import Capabilities as Capabilities
from edgesnn.devices.base import Device as Device
from edgesnn.devices.base import DeviceSession as DeviceSession
from edgesnn.devices.base import ModelInfo as ModelInfo
from edgesnn.devices.handle import DeviceModel as DeviceModel
from edgesnn.devices.local import LocalDevice as LocalDevice
from edgesnn.devices.remote import RemoteDevice as RemoteDevice
from edgesnn.devices.remote import RemoteSession as RemoteSession
from edgesnn.devices.remote import connect as connect

__all__ = ["Capabilities", "Device", "DeviceModel", "DeviceSession", "LocalDevice", "ModelInfo", "RemoteDevice",
           "RemoteSession", "connect"]  # fmt: skip
