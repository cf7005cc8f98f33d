"""The texture-graded plate with a slot, built in memory, saved as DAMASK's files and run.

    .venv/bin/python examples/plate/plate.py                      # 24x24x3, taylor, ~1 min
    .venv/bin/python examples/plate/plate.py --cells 151 151 15   # the component-scale layout

Writes examples/plate/case/ (grid.vti, material.yaml, load.yaml, run.yaml) and the results in
examples/plate/case/results/. The same case runs again with `polyfe2 run examples/plate/case/run.yaml`.
"""
import argparse
from pathlib import Path

from polyfe2.simulation.plate import plate_case, write_descriptors
from polyfe2.simulation.runner import run

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--cells", type=int, nargs=3, default=[24, 24, 3])
parser.add_argument("--backend", default="taylor", choices=["taylor", "gru"])
parser.add_argument("--increments", type=int, default=20)
args = parser.parse_args()

config, descriptors = plate_case(cells=tuple(args.cells), K=20 if args.backend == "gru" else 4,
                                 backend=args.backend, increments=args.increments)
case = Path(__file__).resolve().parent / "case"
if descriptors is not None:
    write_descriptors(case / "descriptors.h5", *descriptors)   # grain descriptors and volume fractions
config.save(case)
config.validate()
summary = run(config)
print(f"final P_11 = {summary.P_av[0, 0] / 1e6:.2f} MPa after {summary.increments} increments; results in "
      f"{config.output_dir}")
