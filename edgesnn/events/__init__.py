"""Event-camera input: file formats, live sources, slicing, filters, representations, a simulator.

Every reader returns :data:`EVENT_DTYPE` arrays (x, y, p, t in µs) in bounded
chunks; functions in :mod:`edgesnn.events.functional` do the work and the frozen
classes in :mod:`edgesnn.events.transforms` and :mod:`edgesnn.events.representations`
hold their configuration. Heavy optional packages (aedat, h5py, pyserial, Pillow)
are imported only by the function that needs them (extra ``edgesnn[events]``).
"""

from edgesnn.events._dtype import EVENT_DTYPE as EVENT_DTYPE
from edgesnn.events._dtype import empty_events as empty_events
from edgesnn.events._dtype import make_events as make_events
from edgesnn.events.dat import write_dat as write_dat
from edgesnn.events.evt2 import write_evt2 as write_evt2
from edgesnn.events.evt3 import write_evt3 as write_evt3
from edgesnn.events.io import EventReader as EventReader
from edgesnn.events.io import detect_format as detect_format
from edgesnn.events.io import open_events as open_events
from edgesnn.events.io import read_events as read_events
from edgesnn.events.simulator import EventSimulator as EventSimulator
from edgesnn.events.simulator import SimulatorConfig as SimulatorConfig
from edgesnn.events.sources import FileSource as FileSource
from edgesnn.events.sources import SerialSource as SerialSource
from edgesnn.events.sources import SimulatorSource as SimulatorSource

__all__ = [
    "EVENT_DTYPE", "empty_events", "make_events", "EventReader", "detect_format", "open_events", "read_events",
    "write_evt2", "write_evt3", "write_dat", "FileSource", "SerialSource", "SimulatorSource", "EventSimulator",
    "SimulatorConfig",
]  # fmt: skip
