"""The ``polyfe2`` command line.

    polyfe2 run CONFIG.yaml [--device cpu] [--no-progress]
    polyfe2 backends
    polyfe2 demo [--out DIR] [--cells NX NY NZ] [--increments N]

User errors (bad input) print one line ``polyfe2: error: <file>, key '<key>': <what>`` and
exit with status 2; a run that cannot converge exits with status 3 after writing all
converged increments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import InputError, SolverError


def _cmd_run(args) -> int:
    from .inputs import load_run_config
    from .simulation import run

    overrides = {"device": args.device} if args.device else {}
    config = load_run_config(Path(args.config), overrides)
    summary = run(config, progress=not args.no_progress)
    _report(summary)
    return 0


def _report(summary) -> None:
    print(f"polyfe2: {summary.increments} increments, {summary.iterations} iterations, "
          f"{summary.evaluations} residual evaluations, {summary.cutbacks} cutbacks, {summary.wall:.1f} s")
    if summary.P_av is not None:
        print(f"polyfe2: final average P_11 = {summary.P_av[0, 0] / 1e6:.3f} MPa at F_11 = {summary.F_av[0, 0]:.5f}")
    for what, path in summary.files.items():
        print(f"  {what:<14} {path}")


def _cmd_backends(args) -> int:
    from .constitutive import available

    for name, origin in available().items():
        print(f"{name:<12} {origin}")
    return 0


def _cmd_demo(args) -> int:
    from .inputs import load_run_config
    from .microstructure.plate import write_plate_case
    from .simulation import run

    out = Path(args.out)
    config_path = write_plate_case(out, cells=tuple(args.cells), K=args.K, increments=args.increments,
                                   strain=args.strain, backend=args.backend)
    print(f"polyfe2: demo inputs written to {out}")
    config = load_run_config(config_path)
    summary = run(config, progress=not args.no_progress)
    _report(summary)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="polyfe2", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a simulation from a run config (YAML)")
    p.add_argument("config")
    p.add_argument("--device", help="override the config's device (auto, cpu, cuda)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("backends", help="list the registered constitutive backends")
    p.set_defaults(func=_cmd_backends)
    p = sub.add_parser("demo", help="write and run the texture-graded plate with a slot")
    p.add_argument("--out", default="results/demo")
    p.add_argument("--cells", type=int, nargs=3, default=[24, 24, 3], metavar=("NX", "NY", "NZ"))
    p.add_argument("--K", type=int, default=4, help="orientations per voxel (iso-strain)")
    p.add_argument("--increments", type=int, default=20)
    p.add_argument("--strain", type=float, default=0.02, help="final F_11 - 1")
    p.add_argument("--backend", default="taylor")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        print(f"polyfe2: error: {e}", file=sys.stderr)
        return 2
    except SolverError as e:
        print(f"polyfe2: error: {e}", file=sys.stderr)
        return 3
    except NotImplementedError as e:
        print(f"polyfe2: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
