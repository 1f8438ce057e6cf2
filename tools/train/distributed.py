"""Data-parallel training over processes and machines with JAX's own distributed runtime.

Every process runs the same program on its own slice of each global batch. Parameters and optimizer
state are replicated; the batch is one global array sharded over every process's devices, so the
jitted step's mean over the batch is reduced across processes by XLA itself (gloo on CPU). Every
process draws the same shuffle from the seed, so they agree on each global batch without talking.
Only process 0 writes checkpoints, bundles and summaries.

A run is selected by flags (``--coordinator HOST:PORT --num-processes N --process-id I``) or by the
environment (``EDGESNN_COORDINATOR``, ``EDGESNN_NUM_PROCESSES``, ``EDGESNN_PROCESS_ID``);
``--coordinator auto`` lets JAX read a cluster manager's environment (SLURM, Open MPI, Kubernetes).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from edgesnn.errors import OptionError

ENV = {"coordinator": "EDGESNN_COORDINATOR", "num_processes": "EDGESNN_NUM_PROCESSES",
       "process_id": "EDGESNN_PROCESS_ID"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process sits in a multi-process run (``coordinator="auto"``: ask the cluster manager)."""

    coordinator: str
    num_processes: int | None = None
    process_id: int | None = None

    def __post_init__(self) -> None:
        if self.coordinator != "auto":
            host, sep, port = self.coordinator.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise OptionError(f"expected HOST:PORT or auto, got {self.coordinator!r}", path="--coordinator")
            for name in ("num_processes", "process_id"):
                if getattr(self, name) is None:
                    raise OptionError(
                        f"needed with --coordinator {self.coordinator}", path=f"--{name.replace('_', '-')}"
                    )
        if self.num_processes is not None and self.num_processes < 1:
            raise OptionError(f"expected >= 1, got {self.num_processes}", path="--num-processes")
        if self.process_id is not None and not 0 <= self.process_id < (self.num_processes or 1 << 30):
            raise OptionError(f"expected 0 <= id < {self.num_processes}, got {self.process_id}", path="--process-id")


def cluster_from(
    coordinator: str | None, num_processes: int | None, process_id: int | None, env: Mapping[str, str] = os.environ
) -> Cluster | None:
    """The cluster the flags (else the environment) describe; None for a single-process run."""

    def pick(flag: Any, key: str, cast: type) -> Any:
        if flag is not None:
            return flag
        text = env.get(ENV[key])
        if text in (None, ""):
            return None
        try:
            return cast(text)
        except ValueError:
            raise OptionError(f"expected {cast.__name__}, got {text!r}", path=ENV[key]) from None

    address = pick(coordinator, "coordinator", str)
    if address is None:
        return None
    return Cluster(address, pick(num_processes, "num_processes", int), pick(process_id, "process_id", int))


def initialize(cluster: Cluster, *, timeout_s: int = 300) -> None:
    """Join the run: connect to the coordinator (process 0 serves it) and wait for the others."""
    if cluster.coordinator == "auto":
        jax.distributed.initialize(initialization_timeout=timeout_s)
    else:
        jax.distributed.initialize(cluster.coordinator, num_processes=cluster.num_processes,
                                   process_id=cluster.process_id, initialization_timeout=timeout_s)  # fmt: skip


class DataParallel:
    """One process's part in a data-parallel run; with one process every method is the identity."""

    def __init__(self) -> None:
        self.count = jax.process_count()
        self.index = jax.process_index()
        self.mesh = Mesh(np.array(jax.devices()), ("data",)) if self.count > 1 else None

    @property
    def writer(self) -> bool:
        """Whether this process writes files (process 0)."""
        return self.index == 0

    def check_batch(self, batch_size: int, path: str = "batch_size") -> None:
        """A global batch must split evenly over the processes."""
        if batch_size % self.count:
            raise OptionError(f"the global batch {batch_size} does not split over {self.count} processes", path=path)

    def shard(self, idx: np.ndarray) -> np.ndarray:
        """This process's slice of a global batch's sample indices."""
        if self.count == 1:
            return idx
        n = len(idx) // self.count
        return idx[self.index * n : (self.index + 1) * n]

    def batch(self, local: np.ndarray, global_len: int) -> Any:
        """A global array of ``global_len`` samples from this process's ``local`` slice (numpy when alone)."""
        if self.count == 1:
            return local
        if np.issubdtype(local.dtype, np.integer):
            local = local.astype(np.int32)  # JAX runs without 64-bit types
        sharding = NamedSharding(self.mesh, PartitionSpec("data"))
        return jax.make_array_from_process_local_data(sharding, local, (global_len, *local.shape[1:]))

    def replicate(self, tree: Any) -> Any:
        """The same values on every process, as global replicated arrays."""
        if self.count == 1:
            return tree
        sharding = NamedSharding(self.mesh, PartitionSpec())

        def one(leaf: Any) -> Any:
            a = np.asarray(leaf)
            return jax.make_array_from_process_local_data(sharding, a, a.shape)

        return jax.tree_util.tree_map(one, tree)

    def local(self, tree: Any) -> Any:
        """Replicated global arrays as this process's own copy (arrays that live here)."""
        if self.count == 1:
            return tree
        return jax.tree_util.tree_map(lambda a: a.addressable_data(0) if isinstance(a, jax.Array) else a, tree)
