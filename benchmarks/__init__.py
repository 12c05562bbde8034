"""Speed and memory benchmarks of ``cpc``; run ``python -m benchmarks.run``.

OpenMP threads spin for at most ``GOMP_SPINCOUNT=1000`` rounds (some microseconds)
before sleeping, unless the environment sets a wait policy or a spin count itself. It
must be set before torch starts its thread pool, so it is done here, before any
benchmark module imports torch. GNU OpenMP's default (300000 rounds, about a
millisecond) made a paper training step up to 7x slower on a 2-core machine shared with
other jobs; ``OMP_WAIT_POLICY=PASSIVE`` (no spinning) cost 10-20% on the idle machine;
1000 rounds matched the better of the two in both cases. The ``threads`` section of
the results measures these settings again on the machine that runs the benchmark.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"
