"""Developer tools that are not part of the runtime: training, datasets, benchmarks, fixtures."""
