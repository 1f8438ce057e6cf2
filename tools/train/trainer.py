"""The training loop: BPTT with Adam, evaluation, checkpoint/resume, export of the best model.

Determinism: parameters come from ``jax.random.key(seed)`` and the shuffle of
epoch ``e`` from ``np.random.default_rng([seed, e])``, so a run resumed from
its checkpoint continues with exactly the numbers an uninterrupted run has.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from edgesnn.errors import OptionError, StateError
from tools.train import loss as L
from tools.train.checkpoint import TrainState, load_checkpoint, save_checkpoint
from tools.train.config import ExperimentConfig, LossConfig, OptimizerConfig, SurrogateConfig
from tools.train.data import Dataset, Split, batches, load_dataset, take_batch
from tools.train.distributed import DataParallel
from tools.train.export import export_bundle, producer_info, to_model
from tools.train.models import (
    Network,
    Params,
    build_network,
    count_params,
    forward,
    forward_tallies,
    init_params,
    plan_report,
)
from tools.train.surrogate import make_spike_fn

log = logging.getLogger("edgesnn.train")

CHECKPOINT = "checkpoint.msgpack"
BUNDLE = "model.esnn"
SUMMARY = "summary.json"


def make_optimizer(o: OptimizerConfig, epochs: int, steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam with the configured schedule, after global-norm gradient clipping."""
    total = max(1, epochs * steps_per_epoch)
    if o.schedule == "constant":
        lr: float | optax.Schedule = o.lr
    elif o.schedule == "cosine":
        lr = optax.cosine_decay_schedule(o.lr, total)
    else:
        warmup = max(1, o.warmup_epochs * steps_per_epoch)
        if warmup < total:
            lr = optax.warmup_cosine_decay_schedule(0.0, o.lr, warmup, total)
        else:  # a run no longer than its warm-up (epochs <= warmup_epochs) only warms up
            log.warning("optimizer/warmup_epochs %d >= epochs %d: the whole run warms up, no decay", o.warmup_epochs,
                        epochs)  # fmt: skip
            lr = optax.linear_schedule(0.0, o.lr, total)
    parts = [optax.clip_by_global_norm(o.clip_norm)] if o.clip_norm is not None else []
    return optax.chain(*parts, optax.adam(lr, b1=o.b1, b2=o.b2))


# One optimizer object per setting, so that make_steps' cache can key on it.
_optimizer = functools.lru_cache(maxsize=8)(make_optimizer)


@dataclasses.dataclass(frozen=True)
class Steps:
    """The jitted functions of one run."""

    train: Callable[..., Any]
    evaluate: Callable[..., Any]
    time_major: bool = False  # train() takes x as (T, B, ...) (checkpointed time loops), else (B, T, ...)


@functools.lru_cache(maxsize=8)
def make_steps(
    net: Network,
    surrogate: SurrogateConfig,
    loss: LossConfig,
    opt: optax.GradientTransformation,
    mesh: jax.sharding.Mesh | None = None,
) -> Steps:
    """JIT-compile the training and evaluation steps (cached: a resumed run in-process reuses them).

    With a ``mesh`` (data-parallel), each device computes the gradient of its own slice of the batch
    and one mean over the ``data`` axis combines them: the time loop itself never talks across
    processes (left to XLA's sharding propagation, the scan exchanged state at every step).
    """
    spike = make_spike_fn(surrogate.kind, surrogate.scale, net.gate)
    readout = loss.readout
    if mesh is not None and net.checkpointing.scheme in ("remote", "double", "auto"):
        raise OptionError(
            "remote checkpoint stores run in one process; train on one machine, or use standard or hierarchical",
            path="train/checkpointing/scheme",
        )
    penalise = loss.max_rate_hz is not None and loss.rate_weight > 0

    # A checkpointed loop bounds everything but the input, so the input arrives time-major rather
    # than being transposed (copied) inside the step; sharded batches keep the batch axis first.
    time_major = mesh is None and net.checkpointing.scheme != "none"

    def loss_fn(params: Params, x: jax.Array, y: jax.Array, key: jax.Array):  # type: ignore[no-untyped-def]
        xt = x if time_major else jnp.swapaxes(x, 0, 1)
        trace, spikes, tallies = forward_tallies(net, spike, params, xt, record=penalise, dropout_key=key)
        lg = L.logits(trace, readout)
        value = L.cross_entropy(lg, y)
        if penalise:
            counted = xt.shape[0] if net.checkpointing.scheme != "none" else None  # the loop returns counts
            value = value + loss.rate_weight * L.rate_penalty(spikes, net.dt_s, loss.max_rate_hz, counted)
        return value, (lg, tallies)

    def local_gradients(params: Params, x: jax.Array, y: jax.Array, key: jax.Array):  # type: ignore[no-untyped-def]
        (value, (lg, tallies)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y, key)
        return grads, value, L.correct(lg, y), tallies

    if net.online is not None:
        from tools.train.online import make_online_gradients  # forward mode: eligibility traces, no BPTT tape

        local_gradients = make_online_gradients(net, spike, loss, net.online.order)
    gradients = local_gradients
    if mesh is not None:
        from jax.sharding import PartitionSpec as P

        def shard_gradients(params: Params, x: jax.Array, y: jax.Array, key: jax.Array):  # type: ignore[no-untyped-def]
            # each slice its own dropout masks
            grads, value, hits, tallies = local_gradients(
                params, x, y, jax.random.fold_in(key, jax.lax.axis_index("data"))
            )
            # equal slices: the mean of the slices' mean gradients is the whole batch's
            return (jax.lax.pmean(grads, "data"), jax.lax.pmean(value, "data"), jax.lax.psum(hits, "data"),
                    jax.lax.psum(tallies, "data"))  # fmt: skip

        gradients = jax.shard_map(shard_gradients, mesh=mesh, in_specs=(P(), P("data"), P("data"), P()),
                                  out_specs=(P(), P(), P(), P()), check_vma=False)  # fmt: skip

    @jax.jit
    def train(params: Params, opt_state: Any, x: jax.Array, y: jax.Array, key: jax.Array):  # type: ignore[no-untyped-def]
        """One optimizer step; ``key`` draws the step's dropout masks (unused without dropout).

        Returns the new parameters and optimizer state, the loss, the number of correct samples and
        the sparse buffers' tallies by layer (empty without sparse BPTT).
        """
        grads, value, hits, tallies = gradients(params, x, y, key)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value, hits, tallies

    # Evaluation runs the dense network, which is what the exported bundle computes.
    dense = dataclasses.replace(net, sparse=None)

    @jax.jit
    def evaluate(params: Params, x: jax.Array, y: jax.Array, mask: jax.Array):  # type: ignore[no-untyped-def]
        trace, _ = forward(dense, spike, params, jnp.swapaxes(x, 0, 1))
        lg = L.logits(trace, readout)
        return L.cross_entropy(lg, y, mask) * jnp.sum(mask), L.correct(lg, y, mask)

    return Steps(train, evaluate, time_major)


#: The fields of a sparse buffer tally (tools.train.models.forward_tallies), as logged and summarised.
TALLY_FIELDS = ("spikes", "spikes_dropped", "gradient_entries", "gradient_entries_dropped")


def _log_buffers(epoch: int, buffers: dict[str, dict[str, int]]) -> None:
    """One line per epoch of what the sparse buffers held, and a warning for each one that overflowed."""
    parts = []
    for name, t in buffers.items():
        parts.append(f"{name} {t['spikes_dropped']}/{t['spikes']} spikes, "
                     f"{t['gradient_entries_dropped']}/{t['gradient_entries']} gradient entries")  # fmt: skip
        if t["spikes_dropped"] or t["gradient_entries_dropped"]:
            log.warning(
                "epoch %d: the sparse buffers of %s overflowed (%d spikes and %d gradient entries dropped); raise "
                "train/sparse/max_activity (input_max_activity where the input is the data)",
                epoch, name, t["spikes_dropped"], t["gradient_entries_dropped"],
            )  # fmt: skip
    log.info("epoch %d sparse buffers (dropped/seen): %s", epoch, "; ".join(parts))


def step_key(seed: int, step: int) -> jax.Array:
    """The random key of optimizer step ``step`` (dropout): a function of the seed and the step alone."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 1), step)


def evaluate(steps: Steps, params: Params, split: Split, batch_size: int) -> dict[str, float]:
    """Mean loss and accuracy over a whole split (the last batch is padded and masked)."""
    n = len(split)
    b = min(batch_size, n)
    total_loss = total_correct = 0.0
    for start in range(0, n, b):
        x, y = split.x[start : start + b], split.y[start : start + b]
        pad = b - len(y)
        mask = np.concatenate([np.ones(len(y), np.float32), np.zeros(pad, np.float32)])
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), np.float32)])
            y = np.concatenate([y, np.zeros(pad, np.int64)])
        lsum, hits = steps.evaluate(params, x, y, mask)
        total_loss += float(lsum)
        total_correct += float(hits)
    return {"loss": total_loss / n, "accuracy": total_correct / n}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0 if sys.platform != "darwin" else kib / 2**20


def _fresh_state(cfg: ExperimentConfig, net: Network, opt: optax.GradientTransformation, data: Dataset) -> TrainState:
    params = init_params(net, cfg, jax.random.key(cfg.seed))
    return TrainState(0, params, opt.init(params), params, -1.0, -1, [], cfg.to_dict(), data.sha256,
                      {"seed": cfg.seed})  # fmt: skip


def _resume(path: str, cfg: ExperimentConfig, fresh: TrainState, data: Dataset) -> TrainState:
    state = load_checkpoint(path, fresh.params, fresh.opt_state)
    # Only the epoch count may change between the run and its resumption.
    mine = {k: v for k, v in cfg.to_dict().items() if k != "epochs"}
    theirs = {k: v for k, v in state.config.items() if k != "epochs"}
    if mine != theirs:
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise StateError(f"the checkpoint was written for another configuration (differs in {', '.join(diff)})",
                         path=path)  # fmt: skip
    if state.dataset_sha256 != data.sha256:
        raise StateError("the checkpoint was trained on different data (dataset hash differs)", path=path)
    return dataclasses.replace(state, config=cfg.to_dict())


def train(
    cfg: ExperimentConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    quiet: bool = False,
    data: Dataset | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` into ``out_dir`` (checkpoint, best bundle, summary); return the summary.

    ``data`` overrides the configured dataset (tests); ``stop_after`` ends this
    call after that many epochs, as an interruption would (the checkpoint stays).
    """
    wall0 = time.perf_counter()
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    if data is None and cfg.data is None:
        raise OptionError("no data section: name a dataset, or pass batches to tools.train.Trainer", path="data")
    data = data if data is not None else load_dataset(cfg.data, cfg.dt_s, cfg.seed)
    train_split = data.splits["train"]
    dp = DataParallel()
    dp.check_batch(cfg.batch_size)
    if len(train_split) < cfg.batch_size:
        raise StateError(f"the training split has {len(train_split)} samples, fewer than one batch", path="batch_size")
    steps_per_epoch = len(train_split) // cfg.batch_size
    net = build_network(cfg, (data.n_channels,), data.n_classes)
    opt = _optimizer(cfg.optimizer, cfg.epochs, steps_per_epoch)
    state = _fresh_state(cfg, net, opt, data)
    ckpt = os.path.join(out, CHECKPOINT)
    if resume and os.path.exists(ckpt):
        state = _resume(ckpt, cfg, state, data)
        log.info("resumed from %s after epoch %d", ckpt, state.epoch)
    elif resume:
        log.info("no checkpoint in %s; starting afresh", out)
    steps = make_steps(net, cfg.surrogate, cfg.loss, opt, dp.mesh)
    if net.checkpointing.scheme != "none":
        log.info("%s", plan_report(net, train_split.x.shape[1], cfg.batch_size // dp.count).describe())
    log.info("%s: %d parameters, %d steps of %g s per sample%s", cfg.name, count_params(state.params),
             train_split.x.shape[1], cfg.dt_s,
             f", process {dp.index + 1} of {dp.count}" if dp.count > 1 else "")  # fmt: skip
    quiet = quiet or not dp.writer
    params, opt_state, history = dp.replicate(state.params), dp.replicate(state.opt_state), list(state.history)
    best_params, best_acc, best_epoch = state.best_params, state.best_val_accuracy, state.best_epoch
    seed = state.rng["seed"]
    samples = 0
    train_time = 0.0
    epoch_times: list[float] = []
    epoch_samples: list[int] = []
    last = cfg.epochs if stop_after is None else min(cfg.epochs, state.epoch + stop_after)
    for epoch in range(state.epoch, last):
        t0 = time.perf_counter()
        losses, hits, seen = [], 0.0, 0
        tallies: dict[str, np.ndarray] = {}
        order = batches(len(train_split), cfg.batch_size, np.random.default_rng([seed, epoch]))
        bar = tqdm(order, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=quiet, leave=False)
        for i, idx in enumerate(bar):
            mine = dp.shard(idx)  # this process's slice of the global batch
            x = dp.batch(take_batch(train_split.x, mine, time_major=steps.time_major), len(idx))
            y = dp.batch(train_split.y[mine], len(idx))
            key = step_key(seed, epoch * steps_per_epoch + i)
            params, opt_state, value, ok, tally = steps.train(params, opt_state, x, y, key)
            value, ok = dp.local(value), dp.local(ok)
            for name, counts in tally.items():
                tallies[name] = tallies.get(name, 0) + np.asarray(dp.local(counts), np.int64)
            losses.append(value)
            hits += float(ok)
            seen += len(idx)
            if not quiet:
                bar.set_postfix(loss=f"{float(value):.4f}", acc=f"{hits / seen:.3f}", refresh=False)
        jax.block_until_ready(params)
        dt = time.perf_counter() - t0
        train_time += dt
        epoch_times.append(dt)
        epoch_samples.append(seen)
        samples += seen
        here = dp.local(params)  # every process evaluates the whole split on its own copy
        val = evaluate(steps, here, data.splits["val"], cfg.eval_batch_size)
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(np.asarray(losses))), "train_accuracy": hits / seen,
                  "val_loss": val["loss"], "val_accuracy": val["accuracy"], "train_s": dt,
                  "samples_per_s": seen / dt}  # fmt: skip
        if tallies:
            record["sparse_buffers"] = {name: dict(zip(TALLY_FIELDS, map(int, t), strict=True))
                                        for name, t in tallies.items()}  # fmt: skip
            _log_buffers(epoch + 1, record["sparse_buffers"])
        history.append(record)
        if val["accuracy"] > best_acc:
            best_params, best_acc, best_epoch = here, val["accuracy"], epoch + 1
        state = TrainState(epoch + 1, here, dp.local(opt_state), best_params, best_acc, best_epoch, history,
                           cfg.to_dict(), data.sha256, {"seed": seed})  # fmt: skip
        if dp.writer:
            save_checkpoint(ckpt, state)
        log.info("epoch %d: loss %.4f, train acc %.3f, val acc %.3f (%.0f samples/s)", epoch + 1,
                 record["train_loss"], record["train_accuracy"], val["accuracy"], record["samples_per_s"])  # fmt: skip
        if not quiet:
            tqdm.write(f"epoch {epoch + 1}: loss {record['train_loss']:.4f} val acc {val['accuracy']:.3f}")
    finished = state.epoch >= cfg.epochs
    summary: dict[str, Any] = {
        "name": cfg.name,
        "epochs_completed": state.epoch,
        "finished": finished,
        "best_epoch": best_epoch,
        "best_val_accuracy": best_acc,
        "history": history,
        "parameters": count_params(state.params),
        "processes": dp.count,
        "dataset_sha256": data.sha256,
        "dt_s": cfg.dt_s,
        "method": cfg.method,
        "train_samples": samples,
        "train_seconds": train_time,
        # The first epoch of a call includes XLA compilation; the steady figure leaves it out.
        "throughput_samples_per_s": samples / train_time if train_time else None,
        "steady_throughput_samples_per_s": (
            sum(epoch_samples[1:]) / sum(epoch_times[1:]) if len(epoch_times) > 1 else None),
        "device": str(jax.devices()[0]),
        "jax_version": jax.__version__,
    }  # fmt: skip
    if finished and best_epoch > 0:
        test = evaluate(steps, best_params, data.splits["test"], cfg.eval_batch_size)
        accuracy = {"val": best_acc, "test": test["accuracy"]}
        producer = producer_info(cfg.to_dict(), data.sha256, accuracy, best_epoch)
        summary.update(test_accuracy=test["accuracy"], test_loss=test["loss"], bundle=None)
        if net.reference:
            log.info("%s: the GRU reference is evaluated in JAX only (no bundle)", cfg.name)
        else:
            if dp.writer:
                export_bundle(to_model(net, best_params, labels=data.labels, producer=producer),
                              os.path.join(out, BUNDLE))  # fmt: skip
            summary["bundle"] = os.path.join(out, BUNDLE)
    summary["wall_seconds"] = time.perf_counter() - wall0
    summary["peak_rss_mib"] = peak_rss_mib()
    if dp.writer:
        with open(os.path.join(out, SUMMARY), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    return summary
