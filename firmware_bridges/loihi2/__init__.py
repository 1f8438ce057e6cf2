"""The Loihi 2 bridge: edgesnn bundles as Lava processes, served over the edgesnn.v1 DeviceService.

Runs in its own environment (``firmware_bridges/loihi2/.venv``, made by ``setup.sh``):
lava-nc 0.10.0 needs numpy < 2. Start it with
``firmware_bridges/loihi2/.venv/bin/python -m firmware_bridges.loihi2 --port 50061``.
See README.md for the simulator/hardware choice and what runs where.
"""
