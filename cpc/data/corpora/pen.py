"""Synthetic pen trajectories with writer identity, from the sigma-lognormal model.

The kinematic theory of rapid human movements (Plamondon's sigma-lognormal model)
describes handwriting as a sum of overlapping strokes. Stroke ``i`` starts at ``t0``,
travels a distance ``D`` along a circular arc from direction ``theta_start`` to
``theta_end``, and its speed has a lognormal profile::

    |v_i(t)| = D / (sigma * sqrt(2 pi) * (t - t0)) * exp(-(ln(t - t0) - mu)^2 / (2 sigma^2))
    phi_i(t) = theta_start + (theta_end - theta_start) * Phi((ln(t - t0) - mu) / sigma)

(``Phi`` the standard normal CDF); the pen velocity is the vector sum of the strokes.

A writer owns a *style*: a stroke plan (one to three pen-down components of three to
seven strokes, plus an optional dot, joined by pen-up transit strokes), a slant (shear),
a size, a speed, a pressure level and its coupling to speed, and a pen tilt. Every
genuine sample re-draws the plan with small jitter (about 5% on distances, timing and
``sigma``, 0.06 rad on directions). A *skilled forgery* follows the target writer's plan
with three times the jitter, 30-80% slower (forgers draw carefully), with the forger's
own pressure and tilt: close in shape, different in dynamics, as in SVC2004 Task 2.

Each sample is a float32 array ``(t, 6)`` sampled at 100 Hz by default, channels
:data:`CHANNELS`: ``x`` and ``y`` in millimetres (``y`` up), ``pressure`` in [0, 1] (0
when the pen is up), ``pen_down`` in {0, 1}, ``azimuth`` and ``altitude`` in degrees.
The pen keeps moving while up (as a tablet in proximity records it).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cpc.data.corpora.budget import check_pen
from cpc.errors import ConfigError

__all__ = [
    "CHANNELS",
    "SAMPLE_RATE",
    "generate_pen_corpus",
    "generate_pen_samples",
    "generate_skilled_forgeries",
    "write_svc2004",
]

CHANNELS: tuple[str, ...] = ("x", "y", "pressure", "pen_down", "azimuth", "altitude")
"""Channel order of every sample (the order of :mod:`cpc.data.signal_io`'s SVC2004 reader)."""
SAMPLE_RATE = 100.0
"""Default sampling rate in Hz, that of the SVC2004 tablets."""

_OVERSAMPLE = 10  # integrate the velocity on a 10x finer grid, then decimate
_SPAN = 3.0  # a stroke is active for ln(t - t0) within mu +- 3 sigma
# columns of a stroke plan: onset delay after the previous stroke's onset (s), mu, sigma,
# distance (mm), theta_start, theta_end (rad)
_DELAY, _MU, _SIGMA, _DIST, _THETA_S, _THETA_E = range(6)


@dataclass(frozen=True)
class _Style:
    components: tuple[np.ndarray, ...]  # each (n, 6) stroke plan, pen down
    transits: np.ndarray  # (len(components) - 1, 6) pen-up moves; delay = pause before
    slant: float  # shear angle (rad), positive leans right
    size: float  # scale of the distances
    speed: float  # time scale, > 1 is slower
    pressure: float  # mean pressure in (0, 1)
    pressure_speed: float  # relative pressure drop at high speed
    azimuth: float  # degrees
    altitude: float  # degrees
    wobble: float  # amplitude of the tilt oscillation, degrees


def _component(rng: np.random.Generator, num_strokes: int) -> np.ndarray:
    """Alternate up and down strokes leaning right, with some rightward connectors."""
    plan = np.empty((num_strokes, 6))
    for i in range(num_strokes):
        if rng.random() < 0.25:
            theta = rng.uniform(-0.4, 0.4)  # rightward connector
            distance = rng.uniform(4.0, 12.0)
        else:
            up = i % 2 == 0
            theta = (math.pi / 2 + rng.uniform(-0.7, 0.2)) * (1 if up else -1)
            distance = rng.uniform(5.0, 18.0)
        plan[i] = (
            0.0 if i == 0 else rng.uniform(0.07, 0.16),
            rng.uniform(-1.9, -1.4),
            rng.uniform(0.18, 0.35),
            distance,
            theta,
            theta + rng.uniform(-1.3, 1.3),
        )
    return plan


def _writer_style(rng: np.random.Generator) -> _Style:
    components = [_component(rng, int(rng.integers(3, 8))) for _ in range(rng.integers(1, 4))]
    if rng.random() < 0.3:  # a dot, as over an i
        components.append(np.array([[0.0, -2.2, 0.2, 1.0, -1.0, -2.0]]))
    transits = np.array(
        [
            (
                rng.uniform(0.05, 0.2),
                rng.uniform(-1.6, -1.2),
                rng.uniform(0.2, 0.3),
                rng.uniform(5.0, 20.0),
                theta,
                theta + rng.uniform(-0.5, 0.5),
            )
            for theta in rng.uniform(-0.8, 0.8, size=len(components) - 1)
        ]
    ).reshape(-1, 6)
    return _Style(
        components=tuple(components),
        transits=transits,
        slant=rng.uniform(-0.35, 0.35),
        size=rng.uniform(0.8, 1.25),
        speed=rng.uniform(0.8, 1.3),
        pressure=rng.uniform(0.35, 0.8),
        pressure_speed=rng.uniform(0.0, 0.5),
        azimuth=rng.uniform(150.0, 250.0),
        altitude=rng.uniform(40.0, 70.0),
        wobble=rng.uniform(1.0, 6.0),
    )


def _jitter_plan(plan: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    out = plan.copy()
    n = len(plan)
    out[:, _DELAY] *= np.exp(rng.normal(0.0, 0.06 * scale, n))
    out[:, _MU] += rng.normal(0.0, 0.04 * scale, n)
    out[:, _SIGMA] *= np.exp(rng.normal(0.0, 0.05 * scale, n))
    out[:, _DIST] *= np.exp(rng.normal(0.0, 0.05 * scale, n))
    out[:, _THETA_S] += rng.normal(0.0, 0.06 * scale, n)
    out[:, _THETA_E] += rng.normal(0.0, 0.06 * scale, n)
    return out


def _jitter(style: _Style, rng: np.random.Generator, scale: float) -> _Style:
    """One sample's version of a style: every parameter perturbed by ``scale`` x jitter."""
    return replace(
        style,
        components=tuple(_jitter_plan(c, rng, scale) for c in style.components),
        transits=_jitter_plan(style.transits, rng, scale),
        slant=style.slant + rng.normal(0.0, 0.03 * scale),
        size=style.size * math.exp(rng.normal(0.0, 0.03 * scale)),
        speed=style.speed * math.exp(rng.normal(0.0, 0.05 * scale)),
        pressure=float(np.clip(style.pressure * math.exp(rng.normal(0.0, 0.05)), 0.05, 0.95)),
        azimuth=style.azimuth + rng.normal(0.0, 2.0),
        altitude=style.altitude + rng.normal(0.0, 1.0),
    )


def _forger(target: _Style, rng: np.random.Generator) -> _Style:
    """Draw a forger who copies the target's plan, slower, with own pressure and tilt."""
    own = _writer_style(rng)
    style = replace(
        target,
        speed=target.speed * rng.uniform(1.3, 1.8),
        slant=target.slant + rng.normal(0.0, 0.1),
        pressure=own.pressure,
        pressure_speed=own.pressure_speed,
        azimuth=own.azimuth,
        altitude=own.altitude,
        wobble=own.wobble,
    )
    return _jitter(style, rng, scale=3.0)


def _render(style: _Style, rng: np.random.Generator, sample_rate: float) -> np.ndarray:
    """Lay the strokes out in time, sum their velocities and integrate.

    Shape:
        Returns ``(t, 6)`` float32 with channels :data:`CHANNELS`.
    """
    strokes, down = [], []  # absolute (t0, mu, sigma, D, theta_s, theta_e); pen-down spans
    clock = 0.05
    for c, plan in enumerate(style.components):
        plan = plan.copy()
        plan[:, _DELAY] *= style.speed
        plan[:, _MU] += math.log(style.speed)
        plan[:, _DIST] *= style.size
        onsets = (
            clock - math.exp(plan[0, _MU] - _SPAN * plan[0, _SIGMA]) + np.cumsum(plan[:, _DELAY])
        )
        ends = onsets + np.exp(plan[:, _MU] + _SPAN * plan[:, _SIGMA])
        strokes += [(t0, *row[1:]) for t0, row in zip(onsets, plan, strict=True)]
        down.append((clock, float(ends.max())))
        clock = float(ends.max())
        if c < len(style.transits):
            pause, mu, sigma, dist, th_s, th_e = style.transits[c]
            mu += math.log(style.speed)
            t0 = clock + pause * style.speed - math.exp(mu - _SPAN * sigma)
            strokes.append((t0, mu, sigma, dist * style.size, th_s, th_e))
            clock = t0 + math.exp(mu + _SPAN * sigma) + 0.03 * style.speed
    fine = 1.0 / (sample_rate * _OVERSAMPLE)
    num = math.ceil((clock + 0.05) * sample_rate) * _OVERSAMPLE
    t = np.arange(num) * fine
    velocity = np.zeros((num, 2))
    for t0, mu, sigma, dist, th_s, th_e in strokes:
        lag = np.clip(t - t0, 1e-9, None)
        z = (np.log(lag) - mu) / sigma
        speed = np.where(
            t > t0, dist * np.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi) * lag), 0.0
        )
        phi = th_s + (th_e - th_s) * 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
        velocity += speed[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
    position = np.cumsum(velocity, axis=0) * fine  # (t_fine, 2)
    position = position[_OVERSAMPLE - 1 :: _OVERSAMPLE]  # (t, 2)
    speed = np.linalg.norm(velocity[_OVERSAMPLE - 1 :: _OVERSAMPLE], axis=1)
    times = t[_OVERSAMPLE - 1 :: _OVERSAMPLE]
    x = position[:, 0] + math.tan(style.slant) * position[:, 1] + rng.normal(0.0, 2.0)
    y = position[:, 1] + rng.normal(0.0, 2.0)
    pen = np.zeros(len(times))
    envelope = np.zeros(len(times))
    for start, end in down:
        inside = (times >= start) & (times <= end)
        pen[inside] = 1.0
        ramp = np.clip(np.minimum(times - start, end - times) / 0.03, 0.0, 1.0)
        envelope = np.where(inside, ramp, envelope)
    fast = np.clip(speed / (np.percentile(speed[pen > 0], 95) + 1e-9), 0.0, 1.5) / 1.5
    pressure = np.clip(style.pressure * (1.0 - style.pressure_speed * fast) * envelope, 0.0, 1.0)
    phase = rng.uniform(0.0, 2 * math.pi)
    azimuth = style.azimuth + style.wobble * np.sin(2 * math.pi * times / 1.3 + phase)
    altitude = style.altitude + 0.5 * style.wobble * np.cos(2 * math.pi * times / 1.7 + phase)
    return np.stack([x, y, pressure, pen, azimuth, altitude], axis=1).astype(np.float32)


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function, Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7)."""
    a = np.abs(x)
    k = 1.0 / (1.0 + 0.3275911 * a)
    poly = k * (
        0.254829592 + k * (-0.284496736 + k * (1.421413741 + k * (-1.453152027 + k * 1.061405429)))
    )
    return np.sign(x) * (1.0 - poly * np.exp(-(a**2)))


def _check(num_writers: int, count: int, sample_rate: float) -> None:
    if num_writers <= 0 or count < 0 or sample_rate <= 0:
        raise ValueError(
            f"need num_writers > 0, a count >= 0 and sample_rate > 0, got {num_writers}, "
            f"{count}, {sample_rate}"
        )


def generate_pen_samples(
    num_writers: int, samples_per_writer: int, seed: int, *, sample_rate: float = SAMPLE_RATE
) -> tuple[list[np.ndarray], np.ndarray]:
    """Generate genuine samples from ``num_writers`` synthetic writers.

    Writer ``w``'s style and sample ``k`` depend only on ``(seed, w, k)``, so adding
    writers or samples leaves the existing ones unchanged.

    Args:
        num_writers: Number of distinct writers.
        samples_per_writer: Genuine samples per writer.
        seed: Seed of the styles and of the per-sample variation.
        sample_rate: Sampling rate in Hz.

    Returns:
        The samples, writer-major (all of writer 0 first), and their writer ids.

    Shape:
        Each sample is ``(t, 6)`` float32 (channels :data:`CHANNELS`, ``t`` varies);
        the ids are ``(num_writers * samples_per_writer,)`` int64.

    """
    _check(num_writers, samples_per_writer, sample_rate)
    samples, writers = [], []
    for w in range(num_writers):
        style = _writer_style(np.random.default_rng([seed, w, 0]))
        for k in range(samples_per_writer):
            rng = np.random.default_rng([seed, w, 1, k])
            samples.append(_render(_jitter(style, rng, scale=1.0), rng, sample_rate))
            writers.append(w)
    return samples, np.asarray(writers, dtype=np.int64)


def generate_skilled_forgeries(
    num_writers: int, forgeries_per_writer: int, seed: int, *, sample_rate: float = SAMPLE_RATE
) -> tuple[list[np.ndarray], np.ndarray]:
    """Generate skilled forgeries of the writers of :func:`generate_pen_samples`.

    Each forgery comes from a different forger who follows the target writer's stroke
    plan with three times the genuine jitter, 30-80% more slowly, with their own
    pressure and tilt (see the module docstring).

    Args:
        num_writers: Number of target writers (the same styles as for the same seed in
            :func:`generate_pen_samples`).
        forgeries_per_writer: Forgeries per target writer.
        seed: The seed given to :func:`generate_pen_samples`.
        sample_rate: Sampling rate in Hz.

    Returns:
        The forgeries, target-major, and the ids of the writers they imitate.

    Shape:
        Each forgery is ``(t, 6)`` float32; the ids are ``(num_writers *
        forgeries_per_writer,)`` int64.

    """
    _check(num_writers, forgeries_per_writer, sample_rate)
    samples, targets = [], []
    for w in range(num_writers):
        style = _writer_style(np.random.default_rng([seed, w, 0]))
        for k in range(forgeries_per_writer):
            rng = np.random.default_rng([seed, w, 2, k])
            samples.append(_render(_forger(style, rng), rng, sample_rate))
            targets.append(w)
    return samples, np.asarray(targets, dtype=np.int64)


def write_svc2004(path: str | os.PathLike[str], sample: np.ndarray, sample_rate: float) -> None:
    """Write one sample in the SVC2004 Task 2 text format.

    The first line holds the number of points, then one row per point of integers
    ``X Y timestamp button azimuth altitude pressure``: ``X`` and ``Y`` in hundredths of
    a millimetre shifted by +200 mm (so they stay positive), the timestamp in
    milliseconds from the first point, the button 1 while the pen is down, azimuth and
    altitude in whole degrees, and pressure scaled to 0-1023.

    Args:
        path: File to write (conventionally ``U<writer>S<sample>.txt``).
        sample: A sample as returned by :func:`generate_pen_samples`.
        sample_rate: The sample's rate in Hz, for the timestamps.

    Shape:
        sample: ``(t, 6)`` with channels :data:`CHANNELS`.

    """
    x, y, pressure, pen, azimuth, altitude = sample.astype(np.float64).T
    table = np.stack(
        [
            np.round((x + 200.0) * 100.0),
            np.round((y + 200.0) * 100.0),
            np.round(np.arange(len(sample)) * 1000.0 / sample_rate),
            pen,
            np.round(azimuth) % 360,
            np.round(altitude),
            np.round(pressure * 1023.0),
        ],
        axis=1,
    ).astype(np.int64)  # (t, 7)
    lines = [str(len(table))] + [" ".join(map(str, row)) for row in table.tolist()]
    Path(path).write_text("\n".join(lines) + "\n")


def generate_pen_corpus(
    out_dir: str | os.PathLike[str],
    *,
    num_writers: int = 10,
    samples_per_writer: int = 20,
    seed: int = 0,
    fmt: str = "npy",
    forgeries_per_writer: int = 0,
    sample_rate: float = SAMPLE_RATE,
) -> Path:
    """Write a synthetic signature corpus and its manifest.

    With ``fmt="npy"`` each sample is ``<writer>/<writer>_g<k>.npy`` (forgeries
    ``_f<k>``), a float32 ``(t, 6)`` array with channels :data:`CHANNELS`. With
    ``fmt="svc"`` the files follow SVC2004's naming, ``U<w>S<k>.txt`` with ``w`` and
    ``k`` from 1, genuine samples first and forgeries after them (see
    :func:`write_svc2004`). ``manifest.csv`` has columns ``path`` (relative), ``writer``
    (the writer signed or imitated) and ``genuine`` (1 or 0).

    Args:
        out_dir: Output directory, created if needed.
        num_writers: Number of writers.
        samples_per_writer: Genuine samples per writer.
        seed: Seed, as in :func:`generate_pen_samples`.
        fmt: ``"npy"`` or ``"svc"``.
        forgeries_per_writer: Skilled forgeries per writer (0 for none).
        sample_rate: Sampling rate in Hz.

    Returns:
        The path of the manifest.

    Raises:
        ConfigError: On an unknown ``fmt``, a size or seed out of range, or a corpus
            larger than the disk or memory can hold (:func:`cpc.data.corpora.budget.check_pen`);
            nothing is written then.

    """
    if fmt not in ("npy", "svc"):
        raise ConfigError(f"fmt must be 'npy' or 'svc', got {fmt!r}")
    out = Path(out_dir)
    check_pen(out, num_writers, samples_per_writer, forgeries_per_writer, seed)
    genuine, writers = generate_pen_samples(
        num_writers, samples_per_writer, seed, sample_rate=sample_rate
    )
    forged, targets = generate_skilled_forgeries(
        num_writers, forgeries_per_writer, seed, sample_rate=sample_rate
    )
    rows = []
    items = [
        (s, int(w), 1, k % samples_per_writer)
        for k, (s, w) in enumerate(zip(genuine, writers, strict=True))
    ]
    if forgeries_per_writer:
        items += [
            (s, int(w), 0, k % forgeries_per_writer)
            for k, (s, w) in enumerate(zip(forged, targets, strict=True))
        ]
    for sample, writer, is_genuine, k in items:
        name = f"w{writer:03d}"
        if fmt == "npy":
            rel = f"{name}/{name}_{'g' if is_genuine else 'f'}{k:03d}.npy"
            (out / name).mkdir(parents=True, exist_ok=True)
            np.save(out / rel, sample)
        else:
            number = k + 1 if is_genuine else samples_per_writer + k + 1
            rel = f"U{writer + 1}S{number}.txt"
            out.mkdir(parents=True, exist_ok=True)
            write_svc2004(out / rel, sample, sample_rate)
        rows.append({"path": rel, "writer": name, "genuine": is_genuine})
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer_csv = csv.DictWriter(f, fieldnames=["path", "writer", "genuine"])
        writer_csv.writeheader()
        writer_csv.writerows(rows)
    return manifest
