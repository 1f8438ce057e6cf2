"""Pure functions on event arrays (EVENT_DTYPE): slicing, filtering and representations.

Each operation is a plain function ``<op>(events, *, ...)`` with explicit keyword
parameters; the frozen transform classes in :mod:`edgesnn.events.transforms` and
:mod:`edgesnn.events.representations` hold configuration and forward to them. The
modules are imported by name (``edgesnn.events.functional.slicing``); this package
re-exports nothing so that importing one operation never pulls in the others.
"""
