"""The ``polyfe2`` command line.

    polyfe2 run CONFIG.yaml [--device cpu] [--no-progress] [--restart INC]   (mpiexec -n K for K ranks)
    polyfe2 backends
    polyfe2 demo [--out DIR] [--cells NX NY NZ] [--increments N]
    polyfe2 datagen gru --out FILE.h5 [--n-ve N] [--paths-per-ve P] [--method taylor|fullfield]
    polyfe2 datagen longer-steps FILE.h5 --every K --out LONGER.h5
    polyfe2 train gru FILE.h5 [...] --out DIR
    polyfe2 evaluate gru MODEL.pt NAME=FILE.h5 [...] --out DIR
    polyfe2 homogenize --geometry GRID.vti --material MATERIAL.yaml [--out C.json]
    polyfe2 odmn fit --geometry GRID.vti --material MATERIAL.yaml --out PARAMS.pt [--depth 6]
    polyfe2 odmn validate --out DIR [--textures S1 S2 W1 W2]
    polyfe2 compare A.hdf5 B.hdf5 [--increment N] [--out PNG]
    polyfe2 fm data --out FILE.h5 [--n-rve N] [--cells D] [--labelled N] [--sampling hss]
    polyfe2 fm pretrain FILE.h5 --out DIR [--preset small]
    polyfe2 fm finetune FILE.h5 --task stiffness|odmn --out DIR [--encoder PRETRAINED.pt]
    polyfe2 fm infer --encoder FINETUNED.pt --geometry GRID.vti --material MATERIAL.yaml --out PARAMS.pt
    polyfe2 inputs          (the input reference, docs/inputs.md)

User errors (bad input) print one line ``polyfe2: error: <file>, key '<key>': <what>`` and
exit with status 2; a run that cannot converge exits with status 3 after writing all
converged increments.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from .errors import InputError, SolverError
from .learn.spec import GRU_FEATURES, GRU_ORIENTATIONS, GRU_POOLINGS, LOADS, METHODS, ODMN_TEST_TEXTURES, PLATE_BANDS, SAMPLINGS, TEXTURES, DatagenSpec, FMDataSpec


def _cmd_run(args) -> int:
    from .simulation.config import load_run_config
    from .simulation.parallel import agree, rank, world

    comm = world()
    overrides = {"device": args.device} if args.device else {}
    config = agree(comm, load_run_config, Path(args.config), overrides)
    from .simulation.runner import run  # PETSc (and torch, if validation did not need it): now

    _stop_on_sigterm(comm)
    summary = run(config, progress=not args.no_progress, restart=args.restart, comm=comm)
    if rank(comm) == 0:
        _report(summary)
    return 0


def _report(summary) -> None:
    print(f"polyfe2: {summary.increments} increments, {summary.iterations} iterations, "
          f"{summary.evaluations} residual evaluations, {summary.cutbacks} cutbacks, {summary.wall:.1f} s")
    if summary.P_av is not None:
        print(f"polyfe2: final average P_11 = {summary.P_av[0, 0] / 1e6:.3f} MPa at F_11 = {summary.F_av[0, 0]:.5f}")
    for what, path in summary.files.items():
        print(f"  {what:<14} {path}")


def _print_summary(result: dict) -> None:
    for k, v in result.items():
        print(f"  {k:<22} {v}")


def _cmd_backends(args) -> int:
    from .constitutive.registry import available

    for name, origin in available().items():
        print(f"{name:<12} {origin}")
    return 0


def _cmd_demo(args) -> int:
    from .simulation.config import load_run_config
    from .simulation.plate import write_plate_case
    from .simulation.runner import run

    out = Path(args.out)
    K = args.K if args.K is not None else 20 if args.backend == "gru" else 4
    if args.backend == "gru" and K != 20:
        raise InputError(f"the gru backend's samples have 20 grains; got {K}", file="command line", key="--K")
    parameters = None
    if args.backend == "odmn" and args.encoder:   # one network per band, inferred from an RVE of its texture
        from .learn.fm_infer import infer_band_parameters

        print(f"polyfe2: inferring one ODMN per texture band with {args.encoder}")
        parameters = infer_band_parameters(Path(args.encoder), out)
    elif args.backend == "odmn":   # one network per texture band, fitted to an RVE of the band's texture
        from .learn.odmn_fit import fit_band_parameters

        print("polyfe2: fitting one ODMN per texture band (RVE 8^3, 20 grains, depth 4)")
        parameters = fit_band_parameters(out, progress=not args.no_progress)
    config_path = write_plate_case(out, cells=tuple(args.cells), K=K, increments=args.increments,
                                   strain=args.strain, backend=args.backend, odmn_parameters=parameters)
    print(f"polyfe2: demo inputs written to {out}")
    config = load_run_config(config_path)
    summary = run(config, progress=not args.no_progress)
    _report(summary)
    return 0


def _cmd_datagen_longer_steps(args) -> int:
    from .learn.datagen import longer_steps

    summary = longer_steps(Path(args.data), Path(args.out), args.every)
    print(f"polyfe2: {summary['samples']} paths of {summary['steps']} steps in {summary['file']}")
    return 0


def _cmd_datagen_gru(args) -> int:
    from .learn.datagen import generate

    spec = DatagenSpec(n_ve=args.n_ve, paths_per_ve=args.paths_per_ve, method=args.method, steps=args.steps,
                       max_strain=args.max_strain, sections=args.sections, dt=args.dt, seed=args.seed,
                       dt_spread=args.dt_spread, dt_levels=args.dt_levels, path_seed=args.path_seed, textured_fraction=args.textured_fraction,
                       texture=args.texture, spread_deg=args.spread, load=args.load,
                       cells=args.cells, chunk=args.chunk)
    spec.check(file="command line")
    summary = generate(Path(args.out), spec, workers=args.workers, progress=not args.no_progress)
    print(f"polyfe2: {summary['samples']} samples ({summary['failed']} failed) in {summary['file']}")
    return 0


def _cmd_train_gru(args) -> int:
    from .learn.train import TrainSpec, train

    spec = TrainSpec(epochs=args.epochs, batch=args.batch, lr=args.lr, hidden=args.hidden,
                     layers=args.layers, val_fraction=args.val_fraction, seed=args.seed,
                     threads=args.threads, max_minutes=args.max_minutes, init=args.init, device=args.device,
                     features=args.features, pooling=args.pooling, augment=args.augment,
                     positions=args.positions, squash=args.squash, beyond_weight=args.beyond_weight,
                     orientation=args.orientation, arch=args.arch)
    files = [Path(p) for p in args.data]
    descriptors, name = None, "grains"
    if args.fingerprint:
        from .learn.fingerprint import fingerprinter, ve_fingerprints
        from .learn.train import load_training_data

        fp = fingerprinter(args.fingerprint, args.fingerprint_weights)
        descriptors = ve_fingerprints(load_training_data(files)["descriptor"], fp)
        name = f"fingerprint:{fp.name}:{fp.weights}"
        print(f"polyfe2: microstructure input: {fp.name} fingerprints ({fp.dim}) of {fp.weights}")
    result = train(files, Path(args.out), spec, progress=not args.no_progress, descriptors=descriptors,
                   microstructure_input=name)
    _print_summary(result)
    return 0


def _fingerprint_inputs(model_file: Path):
    """None for a model of grain descriptors; for one trained on fingerprints, the function that
    makes them from grain descriptors (the method and weights its metadata names)."""
    from .constitutive.surrogates import load_surrogate

    kind = str(load_surrogate(model_file).meta.get("microstructure_input", "grains"))
    if kind == "grains":
        return None
    from .learn.fingerprint import fingerprinter, ve_fingerprints

    _, method, weights = kind.split(":", 2)
    fp = fingerprinter(method, weights)
    return lambda d: ve_fingerprints(d, fp)


def _cmd_evaluate_gru(args) -> int:
    from .learn.evaluate import evaluate_sets

    sets = {}
    for item in args.sets:
        name, sep, file = item.partition("=")
        if not (sep and name and file):
            raise InputError(f"expected NAME=FILE.h5, got {item!r}", file="command line", key="sets")
        sets[name] = Path(file)
    gaps = []
    for item in args.label_gap or []:
        a, sep, b = item.partition(":")
        if not (sep and a in sets and b in sets):
            raise InputError(f"expected REFERENCE:OTHER, two of the set names {sorted(sets)}, got {item!r}",
                             file="command line", key="label-gap")
        gaps.append((a, b))
    report = evaluate_sets(Path(args.model), sets, Path(args.out), descriptors=_fingerprint_inputs(Path(args.model)),
                           label_gaps=gaps)
    for name, r in report["sets"].items():
        print(f"  {name:<18} mean eq.5 error {r['mean_MPa']:.3f} MPa = {r['mean_pct_peak']:.2f} % of peak "
              f"({r['samples']} samples)")
    for name, r in report.get("label_gaps", {}).items():
        print(f"  labels {name}: mean eq.5 difference {r['mean_MPa']:.3f} MPa = {r['mean_pct_peak']:.2f} % of peak")
    return 0


def _add_gru_commands(sub) -> None:

    d = DatagenSpec()
    p = sub.add_parser("datagen", help="generate surrogate training data (HDF5, resumable)")
    kinds = p.add_subparsers(dest="model", required=True)
    g = kinds.add_parser("longer-steps", help="a GRU data set's paths in longer steps (every k-th state and label)")
    g.add_argument("data", help="HDF5 file from 'polyfe2 datagen gru'")
    g.add_argument("--every", type=int, required=True, metavar="K", help="keep every K-th state: steps K times as long")
    g.add_argument("--out", required=True, help="HDF5 file to write")
    g.set_defaults(func=_cmd_datagen_longer_steps)
    g = kinds.add_parser("gru", help="GRU surrogate data")
    g.add_argument("--out", required=True, help="HDF5 file (resumed when it exists with the same options)")
    g.add_argument("--n-ve", type=int, default=d.n_ve, help="volume elements")
    g.add_argument("--paths-per-ve", type=int, default=d.paths_per_ve)
    g.add_argument("--method", choices=METHODS, default=d.method,
                   help="taylor: K=G iso-strain point (cheap); fullfield: spectral solver on the Voronoi grid")
    g.add_argument("--steps", type=int, default=d.steps)
    g.add_argument("--max-strain", type=float, default=d.max_strain)
    g.add_argument("--sections", type=int, default=d.sections)
    g.add_argument("--dt", type=float, default=d.dt, help="time per step in s")
    g.add_argument("--dt-spread", type=float, default=d.dt_spread,
                   help="paths take one of --dt-levels log-spaced step times from dt/spread to dt*spread")
    g.add_argument("--dt-levels", type=int, default=d.dt_levels)
    g.add_argument("--seed", type=int, default=d.seed, help="seed of the VEs")
    g.add_argument("--path-seed", type=int, default=None, help="seed of the load paths (default: --seed)")
    g.add_argument("--textured-fraction", type=float, default=d.textured_fraction,
                   help="share of textured VEs with --texture mixed")
    g.add_argument("--texture", choices=TEXTURES, default=d.texture)
    g.add_argument("--spread", type=float, default=d.spread_deg, help="spread in deg of a fixed component")
    g.add_argument("--load", choices=LOADS, default=d.load,
                   help="random monotonic paths, or an idealised path (final ||ln U|| = --max-strain)")
    g.add_argument("--cells", type=int, default=d.cells, help="grid cells per edge (fullfield; fractions)")
    g.add_argument("--chunk", type=int, default=d.chunk, help="VEs per resumable chunk")
    g.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=_cmd_datagen_gru)

    p = sub.add_parser("train", help="train a surrogate on generated data")
    g = p.add_subparsers(dest="model", required=True).add_parser("gru", help="GRU surrogate")
    g.add_argument("data", nargs="+", help="HDF5 file(s) from 'polyfe2 datagen gru'")
    g.add_argument("--out", required=True, help="directory for checkpoints, curves and plots")
    g.add_argument("--epochs", type=int, default=200)
    g.add_argument("--batch", type=int, default=128)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--arch", choices=("voxel", "grain"), default=None,
                   help="voxel: one GRU state per VE (GRUSurrogate); grain: one per grain in its crystal frame with "
                        "a mean-field coupling (GrainGRUSurrogate); default voxel, --init's with --init")
    g.add_argument("--hidden", type=int, default=256)
    g.add_argument("--layers", type=int, default=2)
    g.add_argument("--val-fraction", type=float, default=0.06, help="held out for validation (94:6)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=None)
    g.add_argument("--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this")
    g.add_argument("--init", default=None, help="start from this model (.pt): its weights and normalisation")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    g.add_argument("--features", choices=GRU_FEATURES, default=None,
                   help="step features: F (min-max scaled isochoric F) or F+dF+dt (standardised F, its increment "
                        "and ln dt); default: F for a new model, --init's otherwise (converted exactly)")
    g.add_argument("--pooling", choices=GRU_POOLINGS, default=None,
                   help="grain pooling: mean, or volume (weighted by the grains' volume fractions); "
                        "default: mean for a new model, --init's otherwise")
    g.add_argument("--squash", type=float, default=None, metavar="C",
                   help="F+dF+dt: standardised step features z reach the network as C asinh(z/C), so strains and "
                        "steps far beyond the training spread do not saturate it; default: --init's, none for a new model")
    g.add_argument("--beyond-weight", type=float, default=1.0, metavar="W",
                   help="full-field and iso-strain sets together: loss weight of the iso-strain labels, which count "
                        "only beyond the full-field sets' largest strain (default 1)")
    g.add_argument("--no-positions", dest="positions", action="store_const", const=False, default=None,
                   help="the seeds' positions are not an input (a periodic VE has none, so moving a VE cannot "
                        "change the prediction); default: --init's, with positions for a new model")
    g.add_argument("--orientation", choices=GRU_ORIENTATIONS, default=None,
                   help="a grain's orientation as the per-grain networks see it: quaternion (reduced to the "
                        "fundamental zone) or cubic (the 15 components of sum_k r_k^4 over the cube axes: the same "
                        "for all 24 equivalents and smooth); default: --init's, quaternion for a new model")
    g.add_argument("--augment", action="store_true",
                   help="every epoch, each training sample in a random one of the cube's 24 rotations (seeds, "
                        "grains, path and stress rotated together: an exact copy of the VE in another frame)")
    g.add_argument("--fingerprint", default=None, metavar="METHOD",
                   help="microstructure input: this fingerprint of each VE (vae, vit, fm) instead of its grain rows")
    g.add_argument("--fingerprint-weights", default=None, help="weights of --fingerprint (default: the shipped ones)")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=_cmd_train_gru)

    p = sub.add_parser("evaluate", help="error report of a trained surrogate")
    g = p.add_subparsers(dest="model", required=True).add_parser("gru", help="GRU surrogate")
    g.add_argument("model", help="model file (.pt)")
    g.add_argument("sets", nargs="+", metavar="NAME=FILE.h5", help="named held-out data sets")
    g.add_argument("--out", required=True, help="directory for report.json and the PNGs")
    g.add_argument("--label-gap", action="append", metavar="REFERENCE:OTHER",
                   help="also report how far the labels of set OTHER are from those of set REFERENCE (the same "
                        "VEs and paths, e.g. iso-strain against full-field labels); repeatable")
    g.set_defaults(func=_cmd_evaluate_gru)


def _cmd_homogenize(args) -> int:
    import json

    import numpy as np

    from .simulation.homogenize import load_microstructure

    config = load_microstructure(Path(args.geometry), Path(args.material))
    from .simulation.homogenize import homogenized_stiffness  # torch and PETSc: inputs are valid

    C = homogenized_stiffness(config, strain=args.strain)
    print("polyfe2: homogenised stiffness, Mandel notation (11, 22, 33, √2·23, √2·13, √2·12), GPa")
    for row in C / 1e9:
        print("  " + " ".join(f"{x:9.3f}" for x in row))
    if args.out:
        Path(args.out).write_text(json.dumps({"mandel_Pa": C.tolist(), "order": ["11", "22", "33", "23", "13", "12"],
                                              "geometry": str(args.geometry), "material": str(args.material),
                                              "strain": args.strain}, indent=1))
        print(f"  written to {args.out}")
    return 0 if np.isfinite(C).all() else 3


def _cmd_odmn_fit(args) -> int:
    from .simulation.homogenize import load_microstructure

    config = load_microstructure(Path(args.geometry), Path(args.material))
    from .learn.odmn_fit import fit_microstructure, plot_loss

    params, report = fit_microstructure(config, depth=args.depth, samples=args.samples, held_out=args.held_out,
                                        steps=args.steps, lr=args.lr, seed=args.seed, progress=not args.no_progress)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    params.save(out)
    png = plot_loss(report["history"], out.with_suffix(".png"), report["held_out_error"])
    print(f"polyfe2: ODMN depth {args.depth} ({params.count()} parameters): relative Frobenius error "
          f"{100 * report['train_error']:.3g} % on {args.samples - args.held_out} triplets, "
          f"{100 * report['held_out_error']:.3g} % on {args.held_out} held out")
    print(f"  parameters  {out}\n  loss curve  {png}")
    return 0


def _cmd_odmn_validate(args) -> int:
    import csv

    from .learn.odmn_validation import BAND_TEXTURES, TEXTURES, plot_curves, validate_texture
    from .microstructure.materials import available_phases, load_phase

    if args.phase not in available_phases():
        raise InputError(f"expected one of {', '.join(available_phases())}, got {args.phase!r}",
                         file="command line", key="--phase")
    if args.samples < 2:
        raise InputError(f"expected at least 2 triplets (a quarter is held out), got {args.samples}",
                         file="command line", key="--samples")
    phase = load_phase(args.phase)
    described = {**TEXTURES, **BAND_TEXTURES}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    rows = [["texture", "description", "fit_held_out_error_pct", "mean_relative_error_pct",
             "max_relative_error_pct", "fit_s", "dns_s", "odmn_s"]]
    for name in args.textures:
        if args.encoder:   # inferred by a fine-tuned encoder from the RVE's quaternion field
            from .learn.fm_infer import validate_inferred

            r = validate_inferred(name, Path(args.encoder), out, grains=args.grains, strain=args.strain, phase=phase,
                                  seed=args.seed)
        else:
            r = validate_texture(name, out, cells=args.cells, grains=args.grains, depth=args.depth,
                                 samples=args.samples, steps=args.steps, strain=args.strain, phase=phase,
                                 seed=args.seed, progress=not args.no_progress)
        results.append(r)
        print(f"polyfe2: {name} ({described[name][0]}): eq. 15 {100 * r.mean_error:.2f} %, eq. 16 "
              f"{100 * r.max_error:.2f} % (elastic C̄ error {100 * r.fit_error:.3f} %; fit or inference {r.time_fit:.0f} s, "
              f"full field {r.time_dns:.0f} s, ODMN {r.time_odmn:.1f} s)")
        rows.append([name, described[name][0], f"{100 * r.fit_error:.4f}", f"{100 * r.mean_error:.3f}",
                     f"{100 * r.max_error:.3f}", f"{r.time_fit:.1f}", f"{r.time_dns:.1f}", f"{r.time_odmn:.2f}"])
        with open(out / "validation.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    png = plot_curves(results, out / "validation.png")
    print(f"  table   {out / 'validation.csv'}\n  curves  {png}")
    return 0


def _cmd_compare(args) -> int:
    from .simulation.compare import compare_runs

    r = compare_runs(Path(args.a), Path(args.b), Path(args.out), args.increment, tuple(args.labels or ()) or None,
                     time=args.time)
    print(f"polyfe2: {r['at']}: mean σ_xx {r['mean_a'] / 1e6:.3f} and {r['mean_b'] / 1e6:.3f} MPa, "
          f"mean |difference| {r['mean_abs_diff'] / 1e6:.3f} MPa ({100 * r['rel_mean_abs_diff']:.2f} % of the mean "
          f"|σ_xx| of the first), largest {r['max_abs_diff'] / 1e6:.3f} MPa; plot {args.out}")
    return 0


def _cmd_inputs(args) -> int:
    from . import schema
    from .constitutive import registry
    from .simulation import config  # noqa: F401  (declares the run-config, load and solver schemas)

    backends = [registry.get(name).options_schema for name in registry.BUILTIN_MODULES]
    order = ("run config (", "run config:", "numerics.yaml", "load.yaml", "material.yaml", "backend_options")
    tables = sorted(schema.documented() + [s for s in backends if s.fields],
                    key=lambda s: next(i for i, o in enumerate(order + ("",)) if s.title.startswith(o)))
    print(schema.markdown(tables), end="")
    return 0


def _cmd_fm_data(args) -> int:
    spec = FMDataSpec(n_rve=args.n_rve, cells=args.cells, grains=args.grains, sampling=args.sampling,
                      resolution_deg=args.resolution, scatter_deg=args.scatter, spread_deg=args.spread,
                      labelled=args.labelled, triplets=args.triplets, seed=args.seed, chunk=args.chunk)
    spec.check(file="command line")
    from .learn.fm_data import generate

    summary = generate(Path(args.out), spec, workers=args.workers, progress=not args.no_progress)
    print(f"polyfe2: {summary['rves']} RVEs ({summary['labelled']} labelled) in {summary['file']}")
    return 0


def _fit_spec(args):
    from .learn.fm_train import FitSpec

    return FitSpec(epochs=args.epochs, batch=args.batch, lr=args.lr, val_fraction=args.val_fraction, seed=args.seed,
                   max_minutes=args.max_minutes, device=args.device)


def _cmd_fm_pretrain(args) -> int:
    from .learn.fm_train import pretrain

    result = pretrain(Path(args.data), Path(args.out), _fit_spec(args), preset=args.preset,
                      mask_ratio=args.mask_ratio, include_labelled=args.include_labelled or None,
                      progress=not args.no_progress)
    _print_summary(result)
    return 0


def _cmd_fm_finetune(args) -> int:
    from .learn.fm_train import finetune

    result = finetune(Path(args.data), Path(args.out), _fit_spec(args), task=args.task,
                      encoder=Path(args.encoder) if args.encoder else None, preset=args.preset, depth=args.depth,
                      progress=not args.no_progress)
    _print_summary(result)
    return 0


def _cmd_fm_infer(args) -> int:
    from .learn.fm_infer import infer

    result = infer(Path(args.encoder), Path(args.geometry), Path(args.material), Path(args.out))
    if result["task"] == "odmn":
        print(f"polyfe2: ODMN of depth {result['depth']} in {result['file']} (backend: odmn, "
              f"backend_options: parameters: {result['file']})")
    else:
        print("polyfe2: " + ", ".join(f"{k} {v / 1e9:.2f} GPa" for k, v in result.items()
                                       if k.startswith("C")) + f" in {result['file']}")
    return 0


def _add_fit_arguments(g, model_file: str, presets: str, lr: float = 1e-3) -> None:
    """The options of a training command on an ``fm data`` set (:class:`~.learn.fm_train.FitSpec`)."""
    g.add_argument("data", help="HDF5 file from 'polyfe2 fm data'")
    g.add_argument("--out", required=True, help=f"directory: checkpoint.pt, {model_file}, history.csv, loss.png")
    g.add_argument("--preset", default="small", help=f"model sizes: {presets}")
    g.add_argument("--epochs", type=int, default=40)
    g.add_argument("--batch", type=int, default=32)
    g.add_argument("--lr", type=float, default=lr)
    g.add_argument("--val-fraction", type=float, default=0.2, help="RVEs held out")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    g.add_argument("--no-progress", action="store_true")


def _cmd_fingerprint(args) -> int:
    import json

    import numpy as np

    from .learn.fingerprint import fingerprinter

    rve = Path(args.rve)
    if rve.is_dir():
        geometry = sorted(rve.glob("*.vti"))
        if len(geometry) != 1:
            raise InputError(f"expected one DAMASK geometry (*.vti) in the directory, found {len(geometry)}",
                             file=rve, key="geometry")
        geometry, material = geometry[0], Path(args.material) if args.material else rve / "material.yaml"
    else:
        if not args.material:
            raise InputError("a geometry file needs --material material.yaml", file=rve, key="material")
        geometry, material = rve, Path(args.material)
    fp = fingerprinter(args.method, args.weights)
    z = fp.encode((geometry, material), log=print)
    print(f"polyfe2: {args.method} fingerprint of {geometry.name} ({fp.dim} values, |z| {np.linalg.norm(z):.4g}) "
          f"by {Path(fp.weights).name}")
    if args.out:
        out = Path(args.out)
        if out.suffix == ".npy":
            np.save(out, z)
        else:
            out.write_text(json.dumps(dict(method=args.method, weights=str(fp.weights), geometry=str(geometry),
                                           material=str(material), fingerprint=z.tolist())) + "\n")
        print(f"polyfe2: written {out}")
    else:
        print(" ".join(f"{v:.4g}" for v in z[:8]) + (" ..." if len(z) > 8 else ""))
    return 0


def _cmd_fingerprint_table(args) -> int:
    from .learn.fingerprint import fingerprinter
    from .learn.fingerprint_table import compare_fingerprints

    weights = {}
    for item in args.weights or []:
        name, sep, file = item.partition("=")
        if not (sep and name and file):
            raise InputError(f"expected METHOD=FILE, got {item!r}", file="command line", key="weights")
        weights[name] = file
    methods = {m: fingerprinter(m, weights.get(m)) for m in args.methods}
    result = compare_fingerprints(Path(args.data), methods, Path(args.out), val_fraction=args.val_fraction,
                                  seed=args.seed)
    print(result["markdown"], end="")
    return 0


def _cmd_vae_train(args) -> int:
    from .learn.vae import train_vae

    result = train_vae(Path(args.data), Path(args.out), _fit_spec(args), preset=args.preset,
                       unlabelled_only=not args.include_labelled, progress=not args.no_progress)
    _print_summary(result)
    return 0


def _cmd_vit_pretrain(args) -> int:
    from .learn.vit import pretrain_vit

    result = pretrain_vit(Path(args.data), Path(args.out), _fit_spec(args), preset=args.preset,
                          unlabelled_only=not args.include_labelled, progress=not args.no_progress)
    _print_summary(result)
    return 0


def _add_fingerprint_commands(sub) -> None:
    p = sub.add_parser("fingerprint", help="a microstructure -> its fingerprint vector (vae, vit or fm)")
    p.add_argument("rve", help="directory with a DAMASK geometry (*.vti) and material.yaml, or a geometry file")
    p.add_argument("--material", default=None, help="DAMASK material.yaml (default: next to the geometry)")
    p.add_argument("--method", required=True, help="vae (paper 001), vit (paper 002) or fm (paper 000)")
    p.add_argument("--weights", default=None, help="local weights file or directory (default: the shipped model)")
    p.add_argument("--out", default=None, help=".npy or .json file for the vector")
    p.set_defaults(func=_cmd_fingerprint)
    p = sub.add_parser("fingerprint-table", help="fingerprints -> PCA -> quadratic regression of the stiffness "
                       "of an fm data set's labelled RVEs: MAPE and R² on held-out RVEs")
    p.add_argument("data", help="HDF5 file from 'polyfe2 fm data' (its labelled RVEs)")
    p.add_argument("--out", required=True, help="directory: table.md, table.json, parity.png")
    p.add_argument("--methods", nargs="+", default=["vae", "vit", "fm"])
    p.add_argument("--weights", nargs="*", metavar="METHOD=FILE", help="weights other than the shipped ones")
    p.add_argument("--val-fraction", type=float, default=0.2, help="labelled RVEs held out (the fm split)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_fingerprint_table)
    for name, action, func, help_text, model, lr in (
            ("vae", "train", _cmd_vae_train, "the 3D ResNet VAE (paper 001) on an fm data set's RVEs", "vae.pt",
             1e-3),
            ("vit", "pretrain", _cmd_vit_pretrain, "the DINOv2-architecture ViT on the RVEs' mid-sections "
             "(masked patch modelling)", "vit.pt", 1e-3)):
        p = sub.add_parser(name, help=f"{name} fingerprint model")
        g = p.add_subparsers(dest="action", required=True).add_parser(action, help=help_text)
        _add_fit_arguments(g, model, "small (default); see the module for the paper's", lr)
        g.add_argument("--include-labelled", action="store_true",
                       help="train on the labelled RVEs too (default: only on those without labels)")
        g.set_defaults(func=func)


def _add_fm_commands(sub) -> None:
    p = sub.add_parser("fm", help="the polycrystal foundation model: RVE data, pretraining, fine-tuning, inference")
    fm = p.add_subparsers(dest="action", required=True)
    d = FMDataSpec()
    g = fm.add_parser("data", help="RVEs whose textures span the texture hull, some with stiffness labels (HDF5)")
    g.add_argument("--out", required=True, help="HDF5 file (resumed when it exists with the same options)")
    g.add_argument("--n-rve", type=int, default=d.n_rve)
    g.add_argument("--cells", type=int, default=d.cells, help="RVE grid cells per edge")
    g.add_argument("--grains", type=int, default=d.grains)
    g.add_argument("--sampling", choices=SAMPLINGS, default=d.sampling,
                   help="hss (hierarchical simplex sampling of the texture hull), dirichlet, or a preset")
    g.add_argument("--resolution", type=float, default=d.resolution_deg, help="of the fundamental orientations, deg")
    g.add_argument("--scatter", type=float, default=d.scatter_deg, help="around the discrete orientations, deg")
    g.add_argument("--spread", type=float, default=d.spread_deg, help="of a texture-component preset, deg")
    g.add_argument("--labelled", type=int, default=d.labelled, help="the first RVEs get stiffness labels")
    g.add_argument("--triplets", type=int, default=d.triplets, help="single-crystal stiffness triplets per label")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--chunk", type=int, default=d.chunk, help="RVEs per resumable chunk")
    g.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=_cmd_fm_data)
    for action, help_text in (("pretrain", "masked-autoencoder pretraining on every RVE (eq. 5)"),
                              ("finetune", "encoder + linear head on the labelled RVEs (end to end)")):
        g = fm.add_parser(action, help=help_text)
        _add_fit_arguments(g, "encoder.pt", "small or paper")
        if action == "pretrain":
            g.add_argument("--mask-ratio", type=float, default=None, help="default: the preset's (0.4)")
            g.add_argument("--include-labelled", action="store_true",
                           help="pretrain on the labelled RVEs too (default: only on those without labels)")
            g.set_defaults(func=_cmd_fm_pretrain)
        else:
            g.add_argument("--task", choices=("stiffness", "odmn"), required=True)
            g.add_argument("--encoder", default=None, help="pretrained encoder.pt (default: from scratch)")
            g.add_argument("--depth", type=int, default=4, help="ODMN depth (task odmn)")
            g.set_defaults(func=_cmd_fm_finetune)
    g = fm.add_parser("infer", help="a microstructure -> its ODMN parameter set (or stiffness) by a fine-tuned encoder")
    g.add_argument("--encoder", required=True, help="fine-tuned encoder.pt")
    g.add_argument("--geometry", required=True, help="DAMASK geometry (.vti)")
    g.add_argument("--material", required=True, help="DAMASK material.yaml")
    g.add_argument("--out", required=True, help="ODMN parameter file (.pt) for the odmn backend, or JSON (stiffness)")
    g.set_defaults(func=_cmd_fm_infer)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="polyfe2", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a simulation from a run config (YAML)")
    p.add_argument("config")
    p.add_argument("--device", help="override the config's device (auto, cpu, cuda)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--restart", type=int, metavar="INC",
                   help="continue from the restart point at increment INC (f_restart in the load case)")
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("backends", help="list the registered constitutive backends")
    p.set_defaults(func=_cmd_backends)
    p = sub.add_parser("homogenize", help="homogenised elastic stiffness (6x6, Mandel) of a geometry + material")
    p.add_argument("--geometry", required=True, help="DAMASK geometry (.vti)")
    p.add_argument("--material", required=True, help="DAMASK material.yaml")
    p.add_argument("--strain", type=float, default=1e-5, help="strain amplitude of the six load cases")
    p.add_argument("--out", default=None, help="JSON file for the 6x6 Mandel matrix (Pa)")
    p.set_defaults(func=_cmd_homogenize)
    p = sub.add_parser("odmn", help="ODMN parameter sets")
    odmn = p.add_subparsers(dest="action", required=True)
    g = odmn.add_parser(
        "fit", help="fit an ODMN to the homogenised stiffness of a geometry + material (one phase)")
    g.add_argument("--geometry", required=True, help="DAMASK geometry (.vti)")
    g.add_argument("--material", required=True, help="DAMASK material.yaml (one phase)")
    g.add_argument("--out", required=True, help="parameter file (.pt); the loss curve goes beside it (.png)")
    g.add_argument("--depth", type=int, default=6)
    g.add_argument("--samples", type=int, default=12, help="stiffness triplets (DNS labels)")
    g.add_argument("--held-out", type=int, default=3, help="triplets kept for the validation error")
    g.add_argument("--steps", type=int, default=1500)
    g.add_argument("--lr", type=float, default=0.02)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=_cmd_odmn_fit)
    g = odmn.add_parser(
        "validate", help="fit ODMNs to test-texture RVEs and compare loading-unloading with full-field CP")
    g.add_argument("--out", required=True, help="directory for the parameter files, validation.csv and .png")
    g.add_argument("--textures", nargs="+", default=list(ODMN_TEST_TEXTURES),
                   choices=list(ODMN_TEST_TEXTURES) + [f"band{b}" for b in range(PLATE_BANDS)],
                   help="test textures, or the plate's texture bands")
    g.add_argument("--cells", type=int, default=16, help="RVE grid cells per edge")
    g.add_argument("--grains", type=int, default=40)
    g.add_argument("--depth", type=int, default=6)
    g.add_argument("--samples", type=int, default=10, help="stiffness triplets (DNS labels), a quarter held out")
    g.add_argument("--steps", type=int, default=1500)
    g.add_argument("--strain", type=float, default=0.02, help="axial strain before unloading")
    g.add_argument("--phase", default="aluminium", help="shipped parameter set (aluminium, aa6022_t4)")
    g.add_argument("--encoder", default=None, help="infer each ODMN with this fine-tuned encoder (fm finetune "
                   "--task odmn) instead of fitting it; the RVE takes the encoder's grid")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=_cmd_odmn_validate)
    p = sub.add_parser("compare", help="Cauchy σ_xx of two runs on one grid: numbers and a side-by-side PNG")
    p.add_argument("a", help="results (DADF5) of the first run")
    p.add_argument("b", help="results (DADF5) of the second run")
    p.add_argument("--increment", type=int, help="default: the last of the first run")
    p.add_argument("--time", type=float, help="instead of --increment: the increment of each run at this time t/s "
                   "(runs with different increment sizes)")
    p.add_argument("--labels", nargs=2, metavar=("A", "B"))
    p.add_argument("--out", default="sigma_xx_compared.png")
    p.set_defaults(func=_cmd_compare)
    p = sub.add_parser("inputs", help="print the input reference (every key, its type, unit and bounds)")
    p.set_defaults(func=_cmd_inputs)
    p = sub.add_parser("demo", help="write and run the texture-graded plate with a slot")
    p.add_argument("--out", default="results/demo")
    p.add_argument("--cells", type=int, nargs=3, default=[24, 24, 3], metavar=("NX", "NY", "NZ"))
    p.add_argument("--K", type=int, default=None, help="orientations per voxel (iso-strain; default 4, gru: 20; "
                   "not used by odmn)")
    p.add_argument("--increments", type=int, default=20)
    p.add_argument("--strain", type=float, default=0.02, help="final F_11 - 1")
    p.add_argument("--backend", default="taylor")
    p.add_argument("--encoder", default=None, help="odmn: infer each band's network with this fine-tuned encoder "
                   "(polyfe2 fm finetune --task odmn) instead of fitting it")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
    _add_gru_commands(sub)
    _add_fm_commands(sub)
    _add_fingerprint_commands(sub)
    args = parser.parse_args(argv)
    from .simulation.parallel import world

    comm = world() if args.command == "run" else None
    try:
        return args.func(args)
    except (InputError, SolverError, NotImplementedError) as e:
        status = 3 if isinstance(e, SolverError) else 2
        if comm is not None and not getattr(e, "agreed", False):
            _abort(comm, f"{e}", status)
        if comm is None or comm.Get_rank() == 0:
            print(f"polyfe2: error: {e}", file=sys.stderr)
        return status
    except Exception as e:
        if comm is None:
            raise
        _abort(comm, f"{type(e).__name__}: {e}", 1)


def _stop_on_sigterm(comm) -> None:
    """PETSc's own handler answers SIGTERM (``kill``, a batch system's time limit) with a block of
    'PETSC ERROR' lines and MPI_Abort. Stop as abruptly, but in one line with status 143: the DADF5
    file is flushed after every increment and restart points are written atomically, so what was
    computed before the signal is kept, as after SIGKILL."""
    from petsc4py import PETSc

    PETSc.Sys.popSignalHandler()

    def stop(signum, frame):
        signal.signal(signum, signal.SIG_IGN)   # one line however many signals follow
        message = f"stopped by {signal.Signals(signum).name}; the increments written so far and the restart points are kept"
        if comm is not None:
            # returns when another rank has already aborted the job
            _abort(comm, message, 128 + signum, kind="stopped")
        else:
            print(f"polyfe2: {message}", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def _abort(comm, message: str, status: int, kind: str = "error"):
    """An error on one rank of a run on several (or a signal, ``kind='stopped'``): the others wait
    in a collective call, so stop them all (MPI_Abort) after saying what happened, in one line."""
    text = " ".join(message.split())
    sys.stdout.flush()
    print(f"polyfe2: {kind} on rank {comm.Get_rank()} of {comm.Get_size()}: {text}", file=sys.stderr, flush=True)
    # The launcher reads the line from a pipe and the abort from its own socket; a job torn down
    # before it has read the pipe loses the line (Hydra forwards no output of a killed process),
    # so give it a moment to forward what is already written.
    time.sleep(0.5)
    comm.Abort(status)


if __name__ == "__main__":
    sys.exit(main())
