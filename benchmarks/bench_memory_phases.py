#!/usr/bin/env python
"""Where a run's peak memory goes: the peak resident memory of each phase of one `taylor` K = 20
plate run (writing an increment to DADF5, the elastic first iterate, solving an increment,
writing a restart point), sampled every 20 ms by a thread, in one process.

The case is the component-scale plate's (slot, free layer, graded texture) on ``--cells N N 15``
with `solver: initial_guess: elastic` and a restart point after the increment, as the whole
151×151×15 plate is run. Numbers are GiB of resident memory before, at the peak of, and after
each phase; the per-crystal figure divides the run's peak above its size-independent base (the
process after loading the config) by the number of crystals.

  python benchmarks/bench_memory_phases.py [--cells 64] [--K 20]
"""
from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve()
try:
    import polyfe2  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(HERE.parents[1] / "src"))


def rss_gib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 2**20
    return float("nan")


class PeakSampler:
    def __init__(self):
        self.peak = rss_gib()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while True:
            self.peak = max(self.peak, rss_gib())
            time.sleep(0.02)

    def phase(self, name: str, f):
        @functools.wraps(f)
        def timed(*args, **kwargs):
            before = self.peak = rss_gib()
            out = f(*args, **kwargs)
            time.sleep(0.05)
            print(f"{name:<26} {before:8.2f} {self.peak:8.2f} {rss_gib():8.2f}", flush=True)
            return out
        return timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=64, help="N: the plate on N x N x 15 cells")
    p.add_argument("--K", type=int, default=20)
    args = p.parse_args()
    from polyfe2.simulation import runner
    from polyfe2.simulation.config import load_run_config
    from polyfe2.simulation.plate import write_plate_case

    sampler = PeakSampler()
    runner._elastic_guess = sampler.phase("elastic first iterate", runner._elastic_guess)
    runner.SpectralSolver.solve = sampler.phase("solve", runner.SpectralSolver.solve)
    runner.RunOutputs.write_increment = sampler.phase("write increment (DADF5)", runner.RunOutputs.write_increment)
    runner.RestartStore.write = sampler.phase("write restart point", runner.RestartStore.write)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_plate_case(Path(tmp), cells=(args.cells, args.cells, 15), K=args.K, increments=1,
                                strain=0.001, backend="taylor")
        cfg = yaml.safe_load(path.read_text())
        cfg["solver"]["initial_guess"] = "elastic"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        load = yaml.safe_load((path.parent / "load.yaml").read_text())
        load["loadstep"][0]["f_restart"] = 1
        (path.parent / "load.yaml").write_text(yaml.safe_dump(load, sort_keys=False))
        config = load_run_config(path)
        base = rss_gib()
        print(f"taylor K = {args.K} plate on {args.cells}x{args.cells}x15 cells; GiB of resident memory")
        print(f"{'phase':<26} {'before':>8} {'peak':>8} {'after':>8}")
        lines = []
        runner.run(config, progress=False, log=lines.append)
        hwm = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM")) / 2**20
        crystals = args.cells * args.cells * 15 * args.K
        print(f"peak {hwm:.2f} GiB, base {base:.2f} GiB: {(hwm - base) * 2**30 / crystals:.0f} B per crystal "
              f"({(hwm - base) * 2**30 / crystals * args.K / 1024:.1f} kB per cell); the run's estimate: "
              f"{lines[0].split('memory ')[-1]}")


if __name__ == "__main__":
    main()
