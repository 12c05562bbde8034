"""The hard pen benchmark: sessions, complex signatures, forgers with their own timing.

The easy setting (:mod:`cpc.data.corpora.pen`) gives answers away: every writer keeps one
pressure level and pen tilt, so channel means identify writers, and forgers are 30-80%
slower, so duration flags them. This module draws the same sigma-lognormal writers
(see :mod:`cpc.data.corpora.pen` for the stroke model) with three changes.

**Sessions.** Each writer signs in ``sessions`` sessions. A session draws the things a
tablet and a day change and a writer does not own: where the signature's centre lies on
the tablet (+-40 mm), a rotation (sd 0.12 rad, about 7 degrees), a scale (sd 12%), a
pressure gain and baseline (pressure = baseline + gain * 0.5 * the writer's pressure
profile over its pen-down mean), a pen tilt (azimuth 150-250, altitude 40-70 degrees)
and its wobble, and a small drift of tempo and size. None of the channel levels is a
writer trait any more; what remains of a writer is the shape, the timing and how
pressure follows speed.

**Complexity.** Two to four pen-down components of four to nine strokes, curls (strokes
that turn by 2.5-4 rad), an optional dot and an optional final flourish; mostly 2-8 s
(1-8 s, median near 4 s) at 100 Hz.

**Motor timing.** Every person has a motor habit (:class:`_Motor`): a typical
lognormal ``sigma``, a base time ``mu`` and how it grows with stroke length (strokes
of larger amplitude take longer), and how far a stroke starts after the previous one
(overlap). A writer's stroke plan takes its timing from their own habit plus fixed
per-stroke idiosyncrasies.

**Skilled forgeries.** A forger has practised the target's signature: they reproduce
the target's stroke distances and directions with twice the genuine jitter, but they
execute them with *their own* motor habit (their own ``sigma`` and ``mu`` with fresh
idiosyncrasies; stroke onsets halfway, geometrically, between their habit and the
target's, since practice pulls the overlaps that make the shape towards the target's),
at a tempo chosen inside the target's genuine range (the forgery lasts the target's
typical duration times a factor of sd 8%), in the forger's own session (tablet,
pressure, tilt). Shape is close; timing and velocity profiles are not the target's,
and duration alone does not tell.

Samples are ``(t, 6)`` float32 with the channels of :data:`cpc.data.corpora.pen.CHANNELS`.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cpc.data.corpora.budget import MAX_PER_WRITER, check_count, check_pen
from cpc.data.corpora.pen import (
    _DELAY,
    _DIST,
    _MU,
    _SIGMA,
    _THETA_E,
    _THETA_S,
    SAMPLE_RATE,
    _check,
    _jitter,
    _render,
    _Style,
    write_svc2004,
)
from cpc.errors import ConfigError

__all__ = [
    "SessionSamples",
    "generate_session_corpus",
    "generate_session_forgeries",
    "generate_session_samples",
    "typical_duration",
]

_FORGER_JITTER = 2.0  # a practised forger: twice the genuine shape jitter
_TEMPO_SD = 0.08  # forgery duration / target's typical duration, log-sd
_PRESSURE = 0.5  # mean pen-down pressure before a session's gain and baseline


@dataclass(frozen=True)
class _Motor:
    """A person's timing habit, used for their own strokes or for a forged plan."""

    sigma: float  # typical lognormal sigma
    mu: float  # log-time of a 10 mm stroke
    slope: float  # d mu / d ln(distance): larger strokes take longer
    overlap: float  # onset delay / previous stroke's exp(mu)


@dataclass(frozen=True)
class _Session:
    offset: tuple[float, float]  # mm
    rotation: float  # rad
    scale: float
    pressure_gain: float
    pressure_base: float
    azimuth: float
    altitude: float
    wobble: float
    tempo: float  # multiplies the writer's speed
    size: float  # multiplies the writer's size


def _motor(rng: np.random.Generator) -> _Motor:
    return _Motor(
        sigma=rng.uniform(0.18, 0.36),
        mu=rng.uniform(-1.9, -1.45),
        slope=rng.uniform(0.15, 0.5),
        overlap=rng.uniform(0.45, 1.0),
    )


def _timed(plan: np.ndarray, motor: _Motor, rng: np.random.Generator) -> np.ndarray:
    """Give a plan's strokes the timing of ``motor`` with per-stroke idiosyncrasies.

    Shape:
        plan: ``(n, 6)`` stroke plan (columns as in :mod:`cpc.data.corpora.pen`).
    """
    out = plan.copy()
    n = len(plan)
    out[:, _SIGMA] = motor.sigma * np.exp(rng.normal(0.0, 0.15, n))
    out[:, _MU] = motor.mu + motor.slope * np.log(plan[:, _DIST] / 10.0) + rng.normal(0.0, 0.1, n)
    delays = motor.overlap * np.exp(out[:-1, _MU]) * np.exp(rng.normal(0.0, 0.2, n - 1))
    out[:, _DELAY] = np.concatenate([[0.0], delays])
    return out


def _shape_component(rng: np.random.Generator, num_strokes: int) -> np.ndarray:
    """Distances and directions of a pen-down component (timing filled by :func:`_timed`)."""
    plan = np.zeros((num_strokes, 6))
    for i in range(num_strokes):
        kind = rng.random()
        if kind < 0.2:  # rightward connector
            theta = rng.uniform(-0.4, 0.4)
            turn, distance = rng.uniform(-1.0, 1.0), rng.uniform(4.0, 12.0)
        elif kind < 0.4:  # a curl: the direction turns by 2.5-4 rad (loops with neighbours)
            theta = rng.uniform(-math.pi, math.pi)
            turn = rng.choice([-1.0, 1.0]) * rng.uniform(2.5, 4.0)
            distance = rng.uniform(8.0, 22.0)
        else:  # up or down stroke
            up = i % 2 == 0
            theta = (math.pi / 2 + rng.uniform(-0.7, 0.2)) * (1 if up else -1)
            turn, distance = rng.uniform(-1.3, 1.3), rng.uniform(5.0, 18.0)
        plan[i, _DIST], plan[i, _THETA_S], plan[i, _THETA_E] = distance, theta, theta + turn
    return plan


def _hard_style(rng: np.random.Generator, motor: _Motor) -> _Style:
    """A writer of the hard benchmark; pressure level and tilt are placeholders (sessions)."""
    shapes = [_shape_component(rng, int(rng.integers(4, 10))) for _ in range(rng.integers(2, 5))]
    if rng.random() < 0.3:  # a dot
        shapes.append(np.array([[0.0, 0.0, 0.0, 1.0, -1.0, -2.0]]))
    if rng.random() < 0.5:  # a final flourish or underline
        theta = rng.uniform(-0.5, 0.3)
        shapes.append(np.array([[0.0, 0.0, 0.0, rng.uniform(15.0, 35.0), theta, theta + 0.6]]))
    transit_shape = np.zeros((len(shapes) - 1, 6))
    transit_shape[:, _DIST] = rng.uniform(5.0, 20.0, len(shapes) - 1)
    transit_shape[:, _THETA_S] = rng.uniform(-0.8, 0.8, len(shapes) - 1)
    transit_shape[:, _THETA_E] = transit_shape[:, _THETA_S] + rng.uniform(-0.5, 0.5)
    transits = _timed(transit_shape, motor, rng)
    transits[:, _DELAY] = rng.uniform(0.1, 0.35, len(transits))  # pause before lifting
    return _Style(
        components=tuple(_timed(s, motor, rng) for s in shapes),
        transits=transits,
        slant=rng.uniform(-0.35, 0.35),
        size=rng.uniform(0.8, 1.25),
        speed=rng.uniform(0.5, 0.9),
        pressure=0.55,
        pressure_speed=rng.uniform(0.0, 0.6),
        azimuth=200.0,
        altitude=55.0,
        wobble=3.0,
    )


def _session(rng: np.random.Generator) -> _Session:
    return _Session(
        offset=(rng.uniform(-40.0, 40.0), rng.uniform(-40.0, 40.0)),
        rotation=rng.normal(0.0, 0.12),
        scale=math.exp(rng.normal(0.0, 0.12)),
        pressure_gain=math.exp(rng.normal(0.0, 0.25)),
        pressure_base=rng.uniform(0.0, 0.25),
        azimuth=rng.uniform(150.0, 250.0),
        altitude=rng.uniform(40.0, 70.0),
        wobble=rng.uniform(1.0, 6.0),
        tempo=math.exp(rng.normal(0.0, 0.06)),
        size=math.exp(rng.normal(0.0, 0.05)),
    )


def _in_session(style: _Style, session: _Session) -> _Style:
    return replace(
        style,
        speed=style.speed * session.tempo,
        size=style.size * session.size,
        azimuth=session.azimuth,
        altitude=session.altitude,
        wobble=session.wobble,
    )


def _place(sample: np.ndarray, session: _Session) -> np.ndarray:
    """Apply the session's tablet transform and pressure calibration to a rendered sample.

    Shape:
        sample: ``(t, 6)``; returns the same.
    """
    out = sample.astype(np.float64)
    c, s = math.cos(session.rotation), math.sin(session.rotation)
    x, y = (out[:, :2] - out[:, :2].mean(axis=0)).T  # the signing box centres the signature
    out[:, 0] = session.scale * (c * x - s * y) + session.offset[0]
    out[:, 1] = session.scale * (s * x + c * y) + session.offset[1]
    down = out[:, 3] > 0
    # the profile keeps the writer's pressure-speed coupling; its level is the session's
    profile = out[:, 2] / max(float(out[down, 2].mean()), 1e-6)
    pressure = session.pressure_base + session.pressure_gain * _PRESSURE * profile
    out[:, 2] = np.where(down, np.clip(pressure, 0.0, 1.0), 0.0)
    return out.astype(np.float32)


def _writer(seed: int, w: int) -> tuple[_Style, _Motor]:
    rng = np.random.default_rng([seed, w, 10])
    motor = _motor(rng)
    return _hard_style(rng, motor), motor


def _sign(
    style: _Style, session: _Session, rng: np.random.Generator, scale: float, sample_rate: float
) -> np.ndarray:
    return _place(
        _render(_jitter(_in_session(style, session), rng, scale), rng, sample_rate), session
    )


@dataclass(frozen=True)
class SessionSamples:
    """Samples of the hard benchmark with who wrote them and when.

    Attributes:
        samples: ``(t, 6)`` float32 arrays (channels of :data:`cpc.data.corpora.pen.CHANNELS`).
        writers: ``(n,)`` int64: the writer who signed (for forgeries, the target).
        sessions: ``(n,)`` int64: the session index (forgeries: -1, the forger's own).

    """

    samples: list[np.ndarray]
    writers: np.ndarray
    sessions: np.ndarray


def generate_session_samples(
    num_writers: int,
    sessions: int,
    per_session: int,
    seed: int,
    *,
    sample_rate: float = SAMPLE_RATE,
) -> SessionSamples:
    """Genuine signatures of the hard benchmark, ``sessions x per_session`` per writer.

    Writer ``w``, session ``s`` and sample ``k`` depend only on ``(seed, w, s, k)``.

    Args:
        num_writers: Number of writers.
        sessions: Sessions per writer (each with its own tablet, pressure and tilt).
        per_session: Signatures per session.
        seed: Seed.
        sample_rate: Sampling rate in Hz.

    Returns:
        Writer-major, then session-major samples.

    """
    _check(num_writers, sessions * per_session, sample_rate)
    if sessions < 1:
        raise ValueError(f"need at least one session, got {sessions}")
    samples, writers, session_ids = [], [], []
    for w in range(num_writers):
        style, _ = _writer(seed, w)
        for s in range(sessions):
            session = _session(np.random.default_rng([seed, w, 11, s]))
            for k in range(per_session):
                rng = np.random.default_rng([seed, w, 12, s, k])
                samples.append(_sign(style, session, rng, 1.0, sample_rate))
                writers.append(w)
                session_ids.append(s)
    return SessionSamples(samples, np.asarray(writers, np.int64), np.asarray(session_ids, np.int64))


def typical_duration(style: _Style, sample_rate: float = SAMPLE_RATE) -> float:
    """Duration in seconds of a writer's signature without jitter, in a neutral session."""
    return len(_render(style, np.random.default_rng(0), sample_rate)) / sample_rate


def _forgery(target: _Style, rng: np.random.Generator, sample_rate: float) -> np.ndarray:
    """The forger practises ``target``'s shape and signs it with their own motor habit."""
    forger_motor = _motor(rng)
    own = _hard_style(rng, forger_motor)  # the forger's own slant, speed coupling...
    # practice pulls the forger's stroke onsets halfway (geometrically) towards the target's,
    # which keeps the overlaps, and so the shape, close; mu and sigma stay the forger's own
    components = []
    for plan in target.components:
        timed = _timed(plan, forger_motor, rng)
        timed[:, _DELAY] = np.sqrt(timed[:, _DELAY] * plan[:, _DELAY])
        components.append(timed)
    copied = replace(
        target,
        components=tuple(components),
        transits=_timed(target.transits, forger_motor, rng),
        slant=target.slant + rng.normal(0.0, 0.05),
        pressure_speed=own.pressure_speed,
        speed=1.0,
    )
    copied = replace(copied, transits=copied.transits.copy())
    copied.transits[:, _DELAY] = target.transits[:, _DELAY]  # pauses are seen and copied
    # tempo inside the genuine range: the forger aims at the target's typical duration
    aim = typical_duration(target, sample_rate) * math.exp(rng.normal(0.0, _TEMPO_SD))
    copied = replace(copied, speed=aim / typical_duration(copied, sample_rate))
    session = _session(rng)
    session = replace(session, tempo=1.0, size=1.0)
    return _sign(copied, session, rng, _FORGER_JITTER, sample_rate)


def generate_session_forgeries(
    num_writers: int, forgeries_per_writer: int, seed: int, *, sample_rate: float = SAMPLE_RATE
) -> SessionSamples:
    """Skilled forgeries of the writers of :func:`generate_session_samples` (same seed).

    Each forgery is by a different forger (see the module docstring); its session id is
    -1 (the forger's own session, never one of the target's).
    """
    _check(num_writers, forgeries_per_writer, sample_rate)
    samples, targets = [], []
    for w in range(num_writers):
        style, _ = _writer(seed, w)
        for k in range(forgeries_per_writer):
            samples.append(_forgery(style, np.random.default_rng([seed, w, 13, k]), sample_rate))
            targets.append(w)
    n = len(samples)
    return SessionSamples(samples, np.asarray(targets, np.int64), np.full(n, -1, np.int64))


def generate_session_corpus(
    out_dir: str | os.PathLike[str],
    *,
    num_writers: int = 10,
    sessions: int = 3,
    per_session: int = 4,
    forgeries_per_writer: int = 0,
    seed: int = 0,
    fmt: str = "npy",
    sample_rate: float = SAMPLE_RATE,
) -> Path:
    """Write a corpus of the hard benchmark and its manifest.

    Files are named as by :func:`cpc.data.corpora.pen.generate_pen_corpus` (``npy``:
    ``<writer>/<writer>_g<k>.npy`` and ``_f<k>``; ``svc``: ``U<w>S<k>.txt``, forgeries
    after the genuine samples), ``k`` counting across sessions in recording order.
    ``manifest.csv`` has columns ``path``, ``writer`` (who signed, or who was imitated),
    ``genuine`` (1 or 0) and ``session`` (0-based; -1 for a forgery).

    Returns:
        The path of the manifest.

    Raises:
        ConfigError: On an unknown ``fmt``, a size or seed out of range, or a corpus
            larger than the disk or memory can hold (:func:`cpc.data.corpora.budget.check_pen`);
            nothing is written then.

    """
    if fmt not in ("npy", "svc"):
        raise ConfigError(f"fmt must be 'npy' or 'svc', got {fmt!r}")
    check_count(sessions, "sessions (--sessions)", 1, MAX_PER_WRITER)
    check_count(per_session, "samples per session (--samples / --sessions)", 1, MAX_PER_WRITER)
    check_pen(Path(out_dir), num_writers, sessions * per_session, forgeries_per_writer, seed)
    genuine = generate_session_samples(
        num_writers, sessions, per_session, seed, sample_rate=sample_rate
    )
    forged = generate_session_forgeries(
        num_writers, forgeries_per_writer, seed, sample_rate=sample_rate
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_writer = sessions * per_session
    rows = []
    for kind, group, per in ((1, genuine, per_writer), (0, forged, forgeries_per_writer)):
        for i, (sample, w, s) in enumerate(
            zip(group.samples, group.writers, group.sessions, strict=True)
        ):
            k, name = i % per, f"w{int(w):03d}"
            if fmt == "npy":
                rel = f"{name}/{name}_{'g' if kind else 'f'}{k:03d}.npy"
                (out / name).mkdir(exist_ok=True)
                np.save(out / rel, sample)
            else:
                rel = f"U{int(w) + 1}S{k + 1 if kind else per_writer + k + 1}.txt"
                write_svc2004(out / rel, sample, sample_rate)
            rows.append({"path": rel, "writer": name, "genuine": kind, "session": int(s)})
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        table = csv.DictWriter(f, fieldnames=["path", "writer", "genuine", "session"])
        table.writeheader()
        table.writerows(rows)
    return manifest
