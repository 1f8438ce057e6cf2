"""Device-side bridges: each a process serving the edgesnn.v1 DeviceService for one accelerator."""
