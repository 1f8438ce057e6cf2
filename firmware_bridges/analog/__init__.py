"""The analog gain-cell attention board: serial link (pyserial, msgpack frames, CRC32), board emulator, bridge."""
