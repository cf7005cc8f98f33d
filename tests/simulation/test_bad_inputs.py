"""Every bad input stops with one line on stderr naming the file and the key, exit status 2,
no traceback, within seconds -- also the ones a user is most likely to write by accident, and
any value a fuzzer puts anywhere in the run config, the material or the load file."""
from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyfe2.errors import InputError
from polyfe2.simulation.config import load_run_config
from polyfe2.simulation.plate import write_plate_case

FILES = ("run.yaml", "material.yaml", "load.yaml")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return write_plate_case(tmp_path_factory.mktemp("base"), cells=(6, 6, 1), K=2, increments=2).parent


def copy_case(base: Path, to: Path) -> Path:
    to.mkdir(parents=True, exist_ok=True)
    for f in ("grid.vti",) + FILES:
        (to / f).write_bytes((base / f).read_bytes())
    return to / "run.yaml"


def run_cli(path: Path) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "polyfe2.cli", "run", str(path), "--no-progress"],
                         capture_output=True, text=True, timeout=120)
    return out.returncode, out.stderr.strip(), time.perf_counter() - t0


def edit_yaml(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def set_solver(data, **options):
    data.setdefault("solver", {}).update(options)


def load_step(data):
    return data["loadstep"][0]


BAD = {
    "binary run config": ("run.yaml", lambda p: p.write_bytes(bytes(range(256)) * 3),
                          "not a text file", None),
    "truncated geometry": ("grid.vti", lambda p: p.write_bytes(p.read_bytes()[:600]),
                           "not a VTK XML image", None),
    "geometry not XML": ("grid.vti", lambda p: p.write_text("material 0 0 0\n"), "not a VTK XML image", None),
    "t: .nan": ("load.yaml", lambda p: edit_yaml(p, lambda d: load_step(d)["discretization"].update(t=float("nan"))),
                "expected a number > 0", "loadstep[0]/discretization/t"),
    "dot_F inf": ("load.yaml", lambda p: edit_yaml(
        p, lambda d: load_step(d)["boundary_conditions"]["mechanical"]["dot_F"][0].__setitem__(0, float("inf"))),
        "expected a finite number", "loadstep[0]/boundary_conditions/mechanical/dot_F"),
    "det F <= 0": ("load.yaml", lambda p: edit_yaml(p, lambda d: load_step(d)["boundary_conditions"].update(
        mechanical={"F": [[-1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]})), "det F", "loadstep[0]/boundary_conditions/mechanical/F"),
    "det F passes zero inside a step": ("load.yaml", lambda p: edit_yaml(p, lambda d: load_step(d)["boundary_conditions"].update(
        mechanical={"F": [[-1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]]})), "det F = 0", "loadstep[0]"),
    "override backend without its options": ("run.yaml", lambda p: edit_yaml(p, lambda d: d.update(backends={"Aluminum": "gru"})),
                                             "needs options", "backends/Aluminum"),
    "mixed numbers of constituents": ("material.yaml", lambda p: edit_yaml(p, lambda d: (
        d["homogenization"].update(SX={"N_constituents": 1, "mechanical": {"type": "pass"}}),
        d["material"][0].update(homogenization="SX", constituents=[{"phase": "Void", "O": [1.0, 0, 0, 0], "v": 1.0}]))),
        "one number of constituents", "homogenization"),
    "inverting rate": ("load.yaml", lambda p: edit_yaml(p, lambda d: load_step(d)["boundary_conditions"].update(
        mechanical={"dot_F": [[-0.1, 0, 0], [0, 0, 0], [0, 0, 0]]})), "det F", "loadstep[0]"),
    "unknown SNES type": ("run.yaml", lambda p: edit_yaml(p, lambda d: set_solver(d, petsc_options="-snes_type bogus")),
                          "unknown type", "solver/petsc_options"),
    "misspelt PETSc option": ("run.yaml", lambda p: edit_yaml(
        p, lambda d: set_solver(d, petsc_options="-snes_type ngmres -snes_ngmers_m 8")),
        "did not use the option(s) ['-snes_ngmers_m']", "solver/petsc_options"),
    "output directory is a file": ("run.yaml", lambda p: (edit_yaml(p, lambda d: d["output"].update(directory="taken")),
                                                          (p.parent / "taken").write_text("x")),
                                   "is not a directory", "output/directory"),
    "spectral_polarization": ("load.yaml", lambda p: edit_yaml(p, lambda d: d["solver"].update(mechanical="spectral_polarization")),
                              "not implemented", "solver/mechanical"),
    "unknown plastic key": ("material.yaml", lambda p: edit_yaml(
        p, lambda d: d["phase"]["Aluminum"]["mechanical"]["plastic"].update({"c_1": 1.0})),
        "unknown key(s) ['c_1']", "phase/Aluminum/mechanical/plastic"),
    "twinning": ("material.yaml", lambda p: edit_yaml(
        p, lambda d: d["phase"]["Aluminum"]["mechanical"]["plastic"].update({"N_tw": [12]})),
        "expected a list of one number = 0", "phase/Aluminum/mechanical/plastic/N_tw"),
    "numerics update_gamma": ("numerics.yaml", lambda p: p.write_text(
        "solver:\n  grid:\n    mechanical:\n      update_gamma: true\n"), "expected one of False",
        "solver/grid/mechanical/update_gamma"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_line_with_file_and_key(name, base, tmp_path):
    file, break_it, message, key = BAD[name]
    run = copy_case(base, tmp_path / "case")
    break_it(run.parent / file)
    rc, err, seconds = run_cli(run)
    assert rc == 2, err
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("polyfe2: error: ") and file in err and message in err, err
    if key:
        assert f"key '{key}'" in err, err
    assert seconds < 60
    assert not (run.parent / "results").exists()   # nothing started


# ------------------------------------------------------------------------------------------------
# fuzzing: any value anywhere
# ------------------------------------------------------------------------------------------------
def leaves(node, path=()):
    """Every (path, value) of a YAML tree, containers included."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):   # the first entries of long lists (materials) suffice
            yield from leaves(v, path + (i,))


def set_at(tree, path, value):
    if not path:
        return value
    node = tree
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return tree


def delete_at(tree, path):
    node = tree
    for p in path[:-1]:
        node = node[p]
    del node[path[-1]]
    return tree


values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.one_of(st.floats(), st.text(max_size=3), st.integers()), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2))


@pytest.fixture(scope="module")
def trees(base):
    return {f: yaml.safe_load((base / f).read_text()) for f in FILES}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_inputs_fail_with_one_line_naming_file_and_key(data, base, trees):
    file = data.draw(st.sampled_from(FILES))
    tree = copy.deepcopy(trees[file])
    paths = [p for p, _ in leaves(tree)]
    path = data.draw(st.sampled_from(paths))
    action = data.draw(st.sampled_from(("replace", "delete", "add")))
    if action == "delete" and path:
        tree = delete_at(tree, path)
    elif action == "add":
        node = tree
        for p in path:
            node = node[p]
        if not isinstance(node, dict):
            return
        node[data.draw(st.text(min_size=1, max_size=8))] = data.draw(values)
    else:
        tree = set_at(tree, path, data.draw(values))
    with tempfile.TemporaryDirectory() as tmp:
        run = copy_case(base, Path(tmp))
        (run.parent / file).write_text(yaml.safe_dump(tree, sort_keys=False))
        t0 = time.perf_counter()
        try:
            load_run_config(run)
        except InputError as e:
            msg = str(e)
            assert "\n" not in msg
            assert msg.startswith(str(run.parent)), msg   # names the file
            # a key path, an unknown key by name, or what is wrong with the file as a whole
            assert any(w in msg for w in ("key '", "unknown key(s) [", "YAML", "mapping at the top level")), msg
        assert time.perf_counter() - t0 < 10


def test_fuzz_helpers_reach_every_file(trees):
    for f in FILES:
        assert len(list(leaves(trees[f]))) > 5
    assert np.isfinite(trees["material.yaml"]["phase"]["Aluminum"]["mechanical"]["elastic"]["C_11"])
