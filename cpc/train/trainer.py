"""The training loop: ``train(config)`` from a config to a checkpoint.

One short loop over pure helpers (:mod:`.schedule`, :mod:`.steps`, :mod:`.loaders`,
:mod:`.checkpoint`). Properties it keeps:

- *Exact resume.* The batches, windows and negatives of step ``n`` are functions of
  ``(seed, epoch, position)`` and the checkpoint stores the epoch and the position in
  it, the optimiser state and every process's RNG states, and the learning rate is a
  function of the step; a run killed at any moment and resumed ends with the same
  weights as one never interrupted (bitwise on a CPU).
- *Distributed.* Under ``torchrun`` the model is wrapped in DDP; ``data.batch_size`` is
  per process, the global batch of a step is ``batch_size * accumulate * world_size``,
  and the result equals one process accumulating the same micro-batches (the loss of a
  step is the mean of its micro-batch losses in both cases). Rank 0 logs and saves;
  every process reads the checkpoint on resume, so ``run.out_dir`` must be on a
  file system all nodes share.
- *Failure.* A non-finite loss stops every process with :class:`NonFiniteLossError`
  before anything of that step is applied or saved; the last checkpoint stays usable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from cpc.checkpoints.lock import RunLock
from cpc.checkpoints.store import (
    TrainState,
    latest_checkpoint,
    load_newest_valid,
    rng_state,
    save_checkpoint,
    set_aside,
    set_rng_state,
)
from cpc.config import Config, ConfigError
from cpc.data.registry import build_model
from cpc.data.seeds import mix_seed
from cpc.data.validate import check_runnable
from cpc.train import distributed
from cpc.train.loaders import TrainData, build_data, make_loader, skip_summary
from cpc.train.metrics import RunLog
from cpc.train.precision import choose_precision, record_precision
from cpc.train.schedule import build_optimizer, lr_at, set_lr
from cpc.train.steps import (
    MicroResult,
    NonFiniteLossError,
    evaluate,
    micro_step,
    negatives_generator,
    optimizer_step,
)

logger = logging.getLogger(__name__)

StepHook = Callable[[int, nn.Module], None]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        step: Optimiser steps taken in total (including before a resume).
        checkpoint: The last checkpoint written or resumed from.
        summary: Run facts: data counts and skipped files by reason, model size,
            stop reason, last train/val metrics, throughput.
        input_seconds_per_s: Seconds of input per second of training (summed over
            processes), for inputs with a known rate; None otherwise.
        items_per_s: Training items (windows, images) per second, summed over processes.

    """

    step: int
    checkpoint: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    input_seconds_per_s: float | None = None
    items_per_s: float = 0.0


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeding the global state is the point)
    torch.manual_seed(seed)


def train(config: Config, *, on_step: StepHook | None = None) -> TrainResult:
    """Train (or resume) the run a config describes.

    Args:
        config: The run; ``run.out_dir`` receives ``config.yaml``, ``metrics.jsonl``,
            ``checkpoints/`` and ``summary.json``.
        on_step: Called as ``on_step(step, model)`` after every optimiser step (after
            that step's validation and checkpoint), on every process.

    Returns:
        The final step, the last checkpoint and the run summary.

    Raises:
        NonFiniteLossError: The loss became NaN or infinite.
        EmptyDatasetError: No usable training data.
        ConfigError: Inconsistent settings.

    """
    check_runnable(config)
    info = distributed.setup(config.run.device)
    try:
        with _locked(config.run.out_dir, info):
            return _train(config, info, on_step)
    finally:
        distributed.teardown(info)


@contextlib.contextmanager
def _locked(out_dir: str, info: distributed.DistInfo) -> Iterator[None]:
    """Hold ``out_dir``'s run lock (rank 0 takes it; every rank stops if it cannot)."""
    lock = RunLock(out_dir) if info.is_main else None
    error: ConfigError | None = None
    if lock is not None:
        try:
            lock.acquire()
        except ConfigError as err:
            error = err
    if info.world_size > 1 and distributed.any_true(error is not None, info.device):
        raise error or ConfigError(f"run.out_dir={out_dir}: rank 0 could not lock it")
    if error is not None:
        raise error
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _resume(
    config: Config,
    info: distributed.DistInfo,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
) -> tuple[TrainState, Path | None]:
    out_dir = Path(config.run.out_dir)
    latest = latest_checkpoint(out_dir)
    if latest is None:
        return TrainState(), None
    if not config.run.resume:
        raise ConfigError(
            f"{out_dir} already holds checkpoints (newest {latest.name}) and run.resume is "
            "false: pick another run.out_dir, delete them, or set run.resume=true"
        )
    ckpt, skipped = load_newest_valid(out_dir, model=model, optimizer=optimizer, scaler=scaler)
    assert ckpt is not None  # checkpoints exist, so one loaded or an error was raised
    distributed.barrier()  # every process has read before rank 0 renames
    for path, reason in skipped:
        aside = set_aside(path) if info.is_main else path
        logger.warning("skipped checkpoint %s: %s; set aside as %s", path.name, reason, aside.name)
    latest = ckpt.path
    saved = ckpt.meta.get("config", {})
    for section in ("model", "data"):
        now = getattr(config, section).__dict__
        changed = sorted(k for k, v in saved.get(section, {}).items() if now.get(k) != v)
        if changed:
            logger.warning("resuming with changed %s settings: %s", section, changed)
    if len(ckpt.rng) == info.world_size:
        set_rng_state(ckpt.rng[info.rank])
    else:
        logger.warning(
            "checkpoint has RNG states of %d processes, not %d: reseeding",
            len(ckpt.rng),
            info.world_size,
        )
        seed_everything(mix_seed(config.run.seed, ckpt.state.step, info.rank))
    logger.info("resumed from %s (step %d, epoch %d)", latest, ckpt.state.step, ckpt.state.epoch)
    return ckpt.state, latest


def _start(config: Config, data: TrainData, model: nn.Module, info: Any, precision: str) -> int:
    """Save ``config.yaml`` and log the run summary (rank 0); returns the model size."""
    params = sum(p.numel() for p in model.parameters())
    if not info.is_main:
        return params
    out_dir = Path(config.run.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    logger.info("data: %s", data.train.report.summary())
    if data.val is not None:
        logger.info("validation data: %s", data.val.report.summary())
    global_batch = config.data.batch_size * config.optim.accumulate * info.world_size
    logger.info(
        "train items %s, val items %s, %s batches/epoch/process; model %.2fM parameters; "
        "%d process(es) on %s, %s; global batch %d",
        data.summary["train_items"],
        data.summary["val_items"],
        data.summary["batches_per_epoch"],
        params / 1e6,
        info.world_size,
        info.device,
        precision,
        global_batch,
    )
    if data.summary["skipped"]:
        logger.warning(
            "skipped %d file(s): %s", data.summary["skipped"], data.summary["skipped_by_reason"]
        )
    return params


def _wrap(
    model: nn.Module, info: distributed.DistInfo, compile_model: bool
) -> tuple[nn.Module, nn.parallel.DistributedDataParallel | None]:
    """The module the loop calls (DDP under torchrun, compiled if asked) and the DDP."""
    ddp = None
    net: nn.Module = model
    if info.world_size > 1:
        ids = [info.device.index] if info.device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        net = ddp
    if compile_model:
        net = torch.compile(net)  # type: ignore[assignment]
    return net, ddp


def _epoch_loader(
    config: Config, data: TrainData, state: TrainState, info: distributed.DistInfo
) -> Any:
    """The remaining batches of the current epoch for this process."""
    return data.epoch_loader(
        state.epoch,
        state.batch_in_epoch,
        seed=mix_seed(config.run.seed, state.epoch, info.rank),
        num_workers=config.data.num_workers,
        pin_memory=info.device.type == "cuda",
        state=state.loaders[info.rank] if state.loaders else None,
    )


def _validate(
    model: nn.Module, data: TrainData, config: Config, info: distributed.DistInfo, precision: str
) -> tuple[float, list[float]] | None:
    """Validation loss and accuracy on the first ``run.val_batches`` batches."""
    if data.val is None or data.val_sampler is None or config.run.val_batches <= 0:
        return None
    data.val.set_epoch(0)
    seed = config.run.seed
    loader = make_loader(data.val, data.val_sampler, data.collate, seed=mix_seed(seed, info.rank))
    batches = islice(loader, config.run.val_batches)
    return evaluate(model, batches, device=info.device, precision=precision, seed=seed)


def _save(
    config: Config,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    state: TrainState,
    data: TrainData,
    info: distributed.DistInfo,
) -> Path | None:
    """Gather every process's RNG state; rank 0 writes the checkpoint; all wait."""
    states = distributed.gather_objects(rng_state())
    if data.streamed:  # where each process's stream stands (indexed data: the position)
        state.loaders = distributed.gather_objects(data.loader_state())
    path = None
    if info.is_main:
        path = save_checkpoint(
            config.run.out_dir,
            model=model,
            optimizer=optimizer,
            state=state,
            config=config,
            scaler=scaler,
            rng=states,  # type: ignore[arg-type]
            data_info=data.info.to_dict(),
            keep_last=config.run.keep_last,
        )
    distributed.barrier()
    return path


#: The trainer's clock (a test may replace it with a fake one).
clock = time.monotonic


def _elapsed(state: TrainState, since: float, max_time: float, info: distributed.DistInfo) -> float:
    """Seconds of training over every resume, the same on every process.

    Only a time budget reads it, so without one nothing is exchanged between processes.
    """
    elapsed = state.elapsed + clock() - since
    if max_time > 0 and info.world_size > 1:
        value = torch.tensor([elapsed], dtype=torch.float64, device=info.device)
        elapsed = float(distributed.all_reduce(value, "max").item())
    return elapsed


def _train(config: Config, info: distributed.DistInfo, on_step: StepHook | None) -> TrainResult:
    run, optim, device = config.run, config.optim, info.device
    seed_everything(run.seed)  # the same initial weights on every process
    model = build_model(config.model).to(device)
    precision = choose_precision(run.precision, device, run.out_dir)
    config = record_precision(config, precision)  # auto: the choice goes into checkpoints
    data = build_data(config, model, info.rank, info.world_size)
    if data.sampler is not None and len(data.sampler) < optim.accumulate:
        raise ConfigError(
            f"optim.accumulate={optim.accumulate} exceeds the {len(data.sampler)} batches "
            "of an epoch per process"
        )
    optimizer = build_optimizer(model, optim)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    seed_everything(mix_seed(run.seed, info.rank))  # per-process streams (dropout)
    state, last_ckpt = _resume(config, info, model, optimizer, scaler)
    resumed_from = last_ckpt
    params = _start(config, data, model, info, precision)
    net, ddp = _wrap(model, info, run.compile)
    log = RunLog(
        run.out_dir,
        tensorboard=run.tensorboard,
        enabled=info.is_main,
        resume_step=state.step,
        total_steps=optim.max_steps,
        progress=run.progress,
        seconds_per_sample=data.seconds_per_sample,
        device=device,
    )
    stop_reason, since, budget = "max_steps", clock(), run.max_time
    done = state.step >= optim.max_steps or 0 < budget <= state.elapsed
    try:
        while not done:
            for micro in _groups(_epoch_loader(config, data, state, info), optim.accumulate):
                lr = lr_at(state.step, optim, _elapsed(state, since, budget, info), budget)
                set_lr(optimizer, lr)
                for m, batch in enumerate(micro):
                    out = _micro(
                        net,
                        ddp,
                        batch,
                        m,
                        len(micro),
                        state,
                        info,
                        run.seed,
                        precision,
                        scaler,
                        last_ckpt,
                    )
                    log.add(out.loss, out.accuracy, out.items, out.samples)
                optimizer_step(model, optimizer, optim.grad_clip, scaler)
                state.step += 1
                state.batch_in_epoch += optim.accumulate
                state.elapsed = _elapsed(state, since, budget, info)
                since = clock()
                if 0 < budget <= state.elapsed:
                    stop_reason = "max_time"
                done = state.step >= optim.max_steps or stop_reason == "max_time"
                log.step(state.step, lr, emit=state.step % run.log_every == 0 or done)
                if state.step % run.val_every == 0 or done:
                    with log.paused():
                        result = _validate(model, data, config, info, precision)
                    if result is not None:
                        log.val(state.step, *result)
                if state.step % run.ckpt_every == 0 or done:
                    with log.paused():
                        last_ckpt = _save(config, model, optimizer, scaler, state, data, info)
                if on_step is not None:
                    on_step(state.step, model)
                if done:
                    break
            else:  # the epoch ran out of batches
                state.epoch += 1
                state.batch_in_epoch = 0
                state.loaders = None
    finally:
        log.close()

    items_s, seconds_s = log.overall()
    data.summary.update(skip_summary(data.train, data.val))  # plus files that failed late
    summary = {
        "step": state.step,
        "epoch": state.epoch,
        "stop_reason": stop_reason,
        "resumed_from": str(resumed_from) if resumed_from else None,
        "checkpoint": str(last_ckpt) if last_ckpt else None,
        "data": data.summary,
        "parameters": params,
        "world_size": info.world_size,
        "device": str(device),
        "precision": precision,
        "train": log.last_train,
        "val": log.last_val,
        "items_per_s": round(items_s, 3),
        "input_seconds_per_s": None if seconds_s is None else round(seconds_s, 3),
    }
    if info.is_main:
        (Path(run.out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
        rate = "" if seconds_s is None else f", {seconds_s:.1f} input s/s"
        logger.info(
            "done: step %d (%s), %.1f items/s%s; checkpoint %s",
            state.step,
            stop_reason,
            items_s,
            rate,
            last_ckpt,
        )
    return TrainResult(state.step, last_ckpt, summary, seconds_s, items_s)


def _groups(loader: Any, size: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive groups of ``size`` micro-batches; an incomplete last group is dropped."""
    batches = iter(loader)
    while len(group := list(islice(batches, size))) == size:
        yield group


def _micro(
    net: nn.Module,
    ddp: nn.parallel.DistributedDataParallel | None,
    batch: dict[str, Any],
    m: int,
    count: int,
    state: TrainState,
    info: distributed.DistInfo,
    seed: int,
    precision: str,
    scaler: torch.amp.GradScaler | None,
    last_ckpt: Path | None,
) -> MicroResult:
    """Micro-batch ``m`` of ``count``: gradients sync across processes on the last one."""
    sync = ddp.no_sync() if ddp is not None and m < count - 1 else contextlib.nullcontext()
    index = m * info.world_size + info.rank  # place in the step's global batch
    generator = negatives_generator(info.device, seed, state.step, index)
    try:
        with sync:
            return micro_step(
                net,
                batch,
                device=info.device,
                precision=precision,
                generator=generator,
                scale=1.0 / count,
                scaler=scaler,
                step=state.step + 1,
            )
    except NonFiniteLossError as err:
        where = last_ckpt or "none (no checkpoint was written yet)"
        raise NonFiniteLossError(
            f"{err} (micro-batch {m}): training stopped; nothing of this step was applied "
            f"or saved. Last good checkpoint: {where}. Try a lower optim.lr, a longer "
            "warm-up, optim.grad_clip > 0 or run.precision=fp32."
        ) from None
