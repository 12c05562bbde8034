"""The training loop: ``train(config)`` from a config to a checkpoint.

:func:`train` takes the run directory's lock (:class:`cpc.checkpoints.lock.RunLock`) and
the stop signals (:mod:`.signals`), then :func:`_setup` builds a :class:`Run` (model,
optimiser, data, resumed state, log) and :func:`_loop` runs named steps over it, each
small and pure where it can be: :func:`_step` (the learning rate from
:mod:`.schedule`, micro-batches and the optimiser update from :mod:`.steps`),
:func:`_after_step` (log, validate, save, stop?), :func:`_finish` (the summary).
Batches come from :mod:`.loaders`, checkpoints are written and read by
:mod:`cpc.checkpoints.store`. Properties it keeps:

- *Exact resume.* The batches, windows and negatives of step ``n`` are functions of
  ``(seed, epoch, position)`` and the checkpoint stores the epoch and the position in
  it, the optimiser state and every process's RNG states, and the learning rate is a
  function of the step (and of the elapsed time, saved too, under a time budget); a run
  killed at any moment and resumed ends with the same weights as one never interrupted
  (bitwise on a CPU).
- *Graceful stops.* SIGTERM, SIGINT and SIGUSR1 end the run after the current step
  with a checkpoint of it; every process stops after the same step (the request is
  reduced over processes at each step boundary). Resuming continues bitwise.
- *Distributed.* Under ``torchrun`` the model is wrapped in DDP; ``data.batch_size`` is
  per process, the global batch of a step is ``batch_size * accumulate * world_size``,
  and the result equals one process accumulating the same micro-batches (the loss of a
  step is the mean of its micro-batch losses in both cases). Rank 0 logs and saves;
  every process reads the checkpoint on resume, so ``run.out_dir`` must be on a
  file system all nodes share.
- *Failure.* A non-finite loss stops every process with :class:`NonFiniteLossError`
  before anything of that step is applied or saved; a checkpoint that cannot be
  written (full disk) stops every process with :class:`~cpc.errors.OutputError`,
  leaving nothing of it behind. Either way the last checkpoint stays usable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import socket
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

from cpc.checkpoints.lock import LOCK_NAME, RunLock
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
from cpc.data.validate import check_runnable, fit_to_data
from cpc.errors import CPCError, OutputError, PeerLostError
from cpc.train import distributed
from cpc.train.loaders import TrainData, build_data, make_loader, skip_summary
from cpc.train.metrics import RunLog
from cpc.train.precision import choose_precision, record_precision
from cpc.train.schedule import build_optimizer, lr_at, set_lr
from cpc.train.signals import STOP_SIGNALS, StopSignals, signal_name
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
        stopped_by: The signal (SIGTERM, SIGINT, SIGUSR1) that stopped the run after
            ``step``, whose checkpoint was written; None when the run ended by itself.

    """

    step: int
    checkpoint: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    input_seconds_per_s: float | None = None
    items_per_s: float = 0.0
    stopped_by: int | None = None


@dataclass
class Run:
    """A run in progress: what its steps read and change.

    Attributes:
        config: The whole run config.
        info: This process's rank, world size and device.
        model: The bare model (what is saved); ``net`` is what the loop calls (DDP or
            compiled wrapper, or the model itself) and ``ddp`` the DDP wrapper, if any.
        optimizer, scaler: The optimiser and the fp16 gradient scaler (None otherwise).
        data: The training and validation data.
        precision: The precision in use (``fp32``, ``bf16``, ``fp16``).
        state: Step, epoch, position in the epoch and elapsed seconds (saved).
        log: Metrics, progress and throughput.
        last_ckpt: The newest checkpoint written or resumed from.
        resumed_from: The checkpoint this run resumed from, if any.
        params: Model parameters.
        since: The clock when the current stretch of training time began.
        lr: The learning rate of the current step.
        stop_reason: ``max_steps``, ``max_time`` or the name of the signal that stopped it.
        stopped_by: That signal's number, when a signal stopped the run.

    """

    config: Config
    info: distributed.DistInfo
    model: nn.Module
    net: nn.Module
    ddp: nn.parallel.DistributedDataParallel | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    data: TrainData
    precision: str
    state: TrainState
    log: RunLog
    last_ckpt: Path | None
    resumed_from: Path | None
    params: int
    since: float = 0.0
    lr: float = 0.0
    stop_reason: str = "max_steps"
    stopped_by: int | None = None


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeding the global state is the point)
    torch.manual_seed(seed)


def train(
    config: Config, *, on_step: StepHook | None = None, stop_signals: bool = False
) -> TrainResult:
    """Train (or resume) the run a config describes.

    With ``stop_signals`` (as ``cpc pretrain`` runs it), SIGTERM, SIGINT (Ctrl-C) and
    SIGUSR1 stop the run after the current step, with a checkpoint of that step
    (:mod:`.signals`); the result then names the signal in ``stopped_by``, and a second
    one raises :class:`~cpc.train.signals.Interrupted` at once. Without it (a library
    call, an experiment that trains several runs) the signals keep their own behaviour.

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
        OutputError: A checkpoint could not be written (full disk, read-only folder);
            nothing of it is left and the older checkpoints are intact.

    """
    config, fitted = fit_to_data(config)
    if fitted:
        logger.info("%s", fitted)
    check_runnable(config)
    info = distributed.setup(config.run.device)
    try:
        catch = STOP_SIGNALS if stop_signals else ()
        with _locked(config.run.out_dir, info), StopSignals(catch) as stop:
            return _train(config, info, on_step, stop)
    except Exception as err:
        if info.world_size > 1 and not isinstance(err, CPCError) and distributed.lost_peer(err):
            raise _peer_lost(config, info, err) from None
        raise
    finally:
        distributed.teardown(info)


def _peer_lost(config: Config, info: distributed.DistInfo, err: Exception) -> PeerLostError:
    """The one line a rank says when another rank died under it (instead of a traceback).

    The rank that failed says why itself (its error, or nothing after a ``kill -9``);
    every other rank, blocked in a collective with it, says this.
    """
    latest = latest_checkpoint(config.run.out_dir)
    then = (
        f"Last checkpoint: {latest}; the same command resumes from it"
        if latest is not None
        else "No checkpoint yet: the same command starts over"
    )
    return PeerLostError(
        f"rank {info.rank} of {info.world_size} on {socket.gethostname()} stopped: another "
        f"process of this run died or became unreachable ({distributed.cause_of(err)}); "
        f"its own node's output says why. {then} (torchrun --max-restarts N restarts "
        "every node by itself)"
    )


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
        if info.world_size > 1:
            _check_shared(out_dir, lock)
        yield
    finally:
        if lock is not None:
            lock.release()


def _check_shared(out_dir: str, lock: RunLock | None) -> None:
    """Every rank must see rank 0's lock file in ``out_dir`` (one folder on a shared FS).

    Every rank reads the checkpoints to resume (after a stop, a crash or an elastic
    restart), so a ``run.out_dir`` that is a node-local folder would let the nodes resume
    from different steps and drift apart or hang; it is refused at the start instead.
    """
    path = Path(out_dir) / LOCK_NAME
    token = distributed.gather_objects(_read_text(path) if lock is not None else None)[0]
    for _ in range(10):  # a network file system may show the file a moment late
        blind = _read_text(path) != token
        if not blind:
            break
        time.sleep(0.5)
    ranks = [r for r, b in enumerate(distributed.gather_objects(blind)) if b]
    if ranks:
        raise ConfigError(
            f"run.out_dir={out_dir} is not one folder shared by every node: rank(s) "
            f"{', '.join(map(str, ranks))} do not see rank 0's lock file there. Every rank "
            "reads the checkpoints to resume: put run.out_dir on a file system all nodes "
            "share (NFS, Lustre, ...)"
        )


def _read_text(path: Path) -> str | None:
    """A small file's text, or None when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


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
    saved, current = ckpt.meta.get("config", {}), config.to_dict()
    for section in ("model", "data"):  # both as plain JSON values (lists, not tuples)
        now = current.get(section, {})
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
        net = compile_or_eager(net, info.device)
    return net, ddp


#: What inductor needs on a CPU to build its kernels.
CXX_COMPILERS = ("c++", "g++", "clang++")


def compile_or_eager(net: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile(net)``, or ``net`` itself with one warning when it cannot compile.

    Inductor builds C++ kernels for a CPU: without a C++ compiler the first step would
    fail deep inside torch, so the run goes on eagerly instead. (On this project's
    measurements ``run.compile`` made CPU steps slower and took minutes to compile:
    docs/performance.md.)
    """
    if device.type == "cpu":
        cxx = os.environ.get("CXX")
        found = [c for c in ((cxx,) if cxx else CXX_COMPILERS) if shutil.which(c)]
        if not found:
            logger.warning("run.compile: no C++ compiler found (CXX, c++, g++): running eagerly")
            return net
    return torch.compile(net)  # type: ignore[return-value]


def _epoch_loader(run: Run) -> Any:
    """The remaining batches of the current epoch for this process."""
    data, state = run.data, run.state
    return data.epoch_loader(
        state.epoch,
        state.batch_in_epoch,
        seed=mix_seed(run.config.run.seed, state.epoch, run.info.rank),
        num_workers=run.config.data.num_workers,
        pin_memory=run.info.device.type == "cuda",
        state=state.loaders[run.info.rank] if state.loaders else None,
    )


def _validate(run: Run) -> tuple[float, list[float]] | None:
    """Validation loss and accuracy on the first ``run.val_batches`` batches."""
    data, cfg = run.data, run.config.run
    if data.val is None or data.val_sampler is None or cfg.val_batches <= 0:
        return None
    data.val.set_epoch(0)
    loader = make_loader(
        data.val, data.val_sampler, data.collate, seed=mix_seed(cfg.seed, run.info.rank)
    )
    batches = islice(loader, cfg.val_batches)
    return evaluate(
        run.model, batches, device=run.info.device, precision=run.precision, seed=cfg.seed
    )


def _save(run: Run) -> None:
    """Gather every process's RNG state; rank 0 writes the checkpoint; all agree on it.

    A checkpoint rank 0 could not write (a full disk: :class:`OutputError`, with nothing
    of it left behind) stops every process with that error, not only rank 0.
    """
    states = distributed.gather_objects(rng_state())
    if run.data.streamed:  # where each process's stream stands (indexed data: the position)
        run.state.loaders = distributed.gather_objects(run.data.loader_state())
    error: Exception | None = None
    if run.info.is_main:
        try:
            run.last_ckpt = save_checkpoint(
                run.config.run.out_dir,
                model=run.model,
                optimizer=run.optimizer,
                state=run.state,
                config=run.config,
                scaler=run.scaler,
                rng=states,  # type: ignore[arg-type]
                data_info=run.data.info.to_dict(),
                keep_last=run.config.run.keep_last,
            )
        except Exception as err:  # every rank must hear of it, or they wait forever
            error = err
    if run.info.world_size == 1:
        if error is not None:
            raise error
        return
    if distributed.any_true(error is not None, run.info.device):  # also the barrier
        raise error or OutputError(
            f"{run.config.run.out_dir}: rank 0 could not write the checkpoint of step "
            f"{run.state.step} (its message says why)"
        )
    run.last_ckpt = Path(distributed.gather_objects(run.last_ckpt)[0])  # type: ignore[arg-type]


#: The trainer's clock (a test may replace it with a fake one).
clock = time.monotonic


def _elapsed(run: Run) -> float:
    """Seconds of training over every resume, the same on every process.

    Only a time budget reads it, so without one nothing is exchanged between processes.
    """
    elapsed = run.state.elapsed + clock() - run.since
    if run.config.run.max_time > 0 and run.info.world_size > 1:
        value = torch.tensor([elapsed], dtype=torch.float64, device=run.info.device)
        elapsed = float(distributed.all_reduce(value, "max").item())
    return elapsed


def _train(
    config: Config, info: distributed.DistInfo, on_step: StepHook | None, stop: StopSignals
) -> TrainResult:
    run = _setup(config, info)
    try:
        _loop(run, on_step, stop)
    finally:
        run.log.close()
    return _finish(run)


def _setup(config: Config, info: distributed.DistInfo) -> Run:
    """Build the model, data and optimiser, resume, and start the log and the clock."""
    cfg, optim, device = config.run, config.optim, info.device
    seed_everything(cfg.seed)  # the same initial weights on every process
    model = build_model(config.model).to(device)
    precision = choose_precision(cfg.precision, device, cfg.out_dir)
    config = record_precision(config, precision)  # auto: the choice goes into checkpoints
    data = build_data(config, model, info.rank, info.world_size)
    if data.sampler is not None and len(data.sampler) < optim.accumulate:
        raise ConfigError(
            f"optim.accumulate={optim.accumulate} exceeds the {len(data.sampler)} batches "
            "of an epoch per process"
        )
    optimizer = build_optimizer(model, optim)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    seed_everything(mix_seed(cfg.seed, info.rank))  # per-process streams (dropout)
    state, last_ckpt = _resume(config, info, model, optimizer, scaler)
    params = _start(config, data, model, info, precision)
    net, ddp = _wrap(model, info, cfg.compile)
    log = RunLog(
        cfg.out_dir,
        tensorboard=cfg.tensorboard,
        enabled=info.is_main,
        resume_step=state.step,
        total_steps=optim.max_steps,
        progress=cfg.progress,
        seconds_per_sample=data.seconds_per_sample,
        device=device,
    )
    run = Run(config, info, model, net, ddp, optimizer, scaler, data, precision, state, log,
              last_ckpt, resumed_from=last_ckpt, params=params)  # fmt: skip
    run.since = clock()
    return run


def _loop(run: Run, on_step: StepHook | None, stop: StopSignals) -> None:
    """Steps until ``optim.max_steps``, the time budget, or a stop signal."""
    budget = run.config.run.max_time
    if run.state.step >= run.config.optim.max_steps or 0 < budget <= run.state.elapsed:
        return
    if _stop_signal(run, stop):  # before the first step: nothing new to save
        return
    while True:
        start = run.state.batch_in_epoch
        for micro in _groups(_epoch_loader(run), run.config.optim.accumulate):
            _step(run, micro)
            if _after_step(run, on_step, stop):
                return
        if start == run.state.batch_in_epoch == 0:  # would spin; the others wait
            raise ConfigError(
                f"rank {run.info.rank}: a whole epoch of its data gave fewer than "
                f"optim.accumulate={run.config.optim.accumulate} batches (streamed shards: "
                "fewer shards than processes x data.num_workers?): add shards or lower them"
            )
        run.state.epoch += 1  # the epoch ran out of batches
        run.state.batch_in_epoch = 0
        run.state.loaders = None


def _step(run: Run, micro: list[dict[str, Any]]) -> None:
    """One optimiser step over a group of micro-batches."""
    state, optim = run.state, run.config.optim
    run.lr = lr_at(state.step, optim, _elapsed(run), run.config.run.max_time)
    set_lr(run.optimizer, run.lr)
    for m, batch in enumerate(micro):
        out = _micro(run, batch, m, len(micro))
        run.log.add(out.loss, out.accuracy, out.items, out.samples)
    optimizer_step(run.model, run.optimizer, optim.grad_clip, run.scaler)
    state.step += 1
    state.batch_in_epoch += optim.accumulate
    state.elapsed = _elapsed(run)
    run.since = clock()


def _after_step(run: Run, on_step: StepHook | None, stop: StopSignals) -> bool:
    """Log, validate and save as scheduled; True when the run ends after this step.

    A run that reached ``optim.max_steps`` or its time budget is finished (validated and
    saved); one stopped by a signal is saved but not validated, so that it ends quickly.
    """
    state, cfg = run.state, run.config.run
    if 0 < cfg.max_time <= state.elapsed:
        run.stop_reason = "max_time"
    finished = state.step >= run.config.optim.max_steps or run.stop_reason == "max_time"
    done = _stop_signal(run, stop, finished) or finished
    run.log.step(state.step, run.lr, emit=state.step % cfg.log_every == 0 or done)
    if state.step % cfg.val_every == 0 or finished:
        with run.log.paused():
            result = _validate(run)
        if result is not None:
            run.log.val(state.step, *result)
    if state.step % cfg.ckpt_every == 0 or done:
        with run.log.paused():
            _save(run)
    if on_step is not None:
        on_step(state.step, run.model)
    return done


def _stop_signal(run: Run, stop: StopSignals, finished: bool = False) -> bool:
    """Whether a stop signal reached any process (the same answer on every rank).

    A run that has just finished anyway ignores it (and ends normally).
    """
    signum = stop.requested or 0
    if run.info.world_size > 1:
        value = torch.tensor([float(signum)], device=run.info.device)
        signum = int(distributed.all_reduce(value, "max").item())
    if not signum or finished:
        return False
    run.stopped_by, run.stop_reason = signum, signal_name(signum)
    return True


def _finish(run: Run) -> TrainResult:
    """The run summary (``summary.json`` on rank 0) and the result."""
    state, info, data = run.state, run.info, run.data
    items_s, seconds_s = run.log.overall()
    data.summary.update(skip_summary(data.train, data.val))  # plus files that failed late
    summary = {
        "step": state.step,
        "epoch": state.epoch,
        "stop_reason": run.stop_reason,
        "resumed_from": str(run.resumed_from) if run.resumed_from else None,
        "checkpoint": str(run.last_ckpt) if run.last_ckpt else None,
        "data": data.summary,
        "parameters": run.params,
        "world_size": info.world_size,
        "device": str(info.device),
        "precision": run.precision,
        "train": run.log.last_train,
        "val": run.log.last_val,
        "items_per_s": round(items_s, 3),
        "input_seconds_per_s": None if seconds_s is None else round(seconds_s, 3),
    }
    if info.is_main:
        (Path(run.config.run.out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
        rate = "" if seconds_s is None else f", {seconds_s:.1f} input s/s"
        logger.info(
            "%s: step %d (%s), %.1f items/s%s; checkpoint %s",
            "stopped" if run.stopped_by else "done",
            state.step,
            run.stop_reason,
            items_s,
            rate,
            run.last_ckpt,
        )
    return TrainResult(state.step, run.last_ckpt, summary, seconds_s, items_s, run.stopped_by)


def _groups(loader: Any, size: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive groups of ``size`` micro-batches; an incomplete last group is dropped."""
    batches = iter(loader)
    while len(group := list(islice(batches, size))) == size:
        yield group


def _micro(run: Run, batch: dict[str, Any], m: int, count: int) -> MicroResult:
    """Micro-batch ``m`` of ``count``: gradients sync across processes on the last one."""
    info, ddp = run.info, run.ddp
    sync = ddp.no_sync() if ddp is not None and m < count - 1 else contextlib.nullcontext()
    index = m * info.world_size + info.rank  # place in the step's global batch
    generator = negatives_generator(info.device, run.config.run.seed, run.state.step, index)
    try:
        with sync:
            return micro_step(
                run.net,
                batch,
                device=info.device,
                precision=run.precision,
                generator=generator,
                scale=1.0 / count,
                scaler=run.scaler,
                step=run.state.step + 1,
            )
    except NonFiniteLossError as err:
        where = run.last_ckpt or "none (no checkpoint was written yet)"
        raise NonFiniteLossError(
            f"{err} (micro-batch {m}): training stopped; nothing of this step was applied "
            f"or saved. Last good checkpoint: {where}. Try a lower optim.lr, a longer "
            "warm-up, optim.grad_clip > 0 or run.precision=fp32."
        ) from None
