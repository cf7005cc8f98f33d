"""Backends by name, including a third-party package registered through an entry point."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from polyfe2.constitutive import available, get
from polyfe2.errors import InputError

SRC = Path(__file__).resolve().parents[2] / "src"

PLUGIN = textwrap.dedent('''
    """A linear (small-strain) isotropic law: P = λ tr(ε) I + 2 μ ε, ε = sym(F) − I."""
    import torch
    from polyfe2.constitutive import Backend, Response
    from polyfe2.schema import Field, Schema


    class LinearIsotropic(Backend):
        options_schema = Schema("backend_options (linlaw)", {
            "E": Field("number", "Young's modulus", default=70e9, unit="Pa", low=0, open_low=True),
            "nu": Field("number", "Poisson's ratio", default=0.3, low=-1, high=0.5, open_low=True, open_high=True)})

        def setup(self, points, device, dtype):
            return {"n": torch.zeros(len(points), device=device, dtype=dtype)}

        def _C(self, dtype, device):
            E, nu = self.options["E"], self.options["nu"]
            lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
            d = torch.eye(3, dtype=dtype, device=device)
            return (lam * torch.einsum("ij,kl->ijkl", d, d)
                    + mu * (torch.einsum("ik,jl->ijkl", d, d) + torch.einsum("il,jk->ijkl", d, d)))

        def evaluate(self, F, F_0, dt, state):
            eps = 0.5 * (F + F.transpose(-1, -2)) - torch.eye(3, dtype=F.dtype, device=F.device)
            P = torch.einsum("ijkl,nkl->nij", self._C(F.dtype, F.device), eps)
            return Response(P, dict(state), torch.zeros(F.shape[0], dtype=torch.bool, device=F.device))

        def stiffness(self, state):
            C = self._C(state["n"].dtype, state["n"].device)
            return C.expand(state["n"].shape[0], 3, 3, 3, 3).clone()
''')


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """Install a tiny third-party package with a ``polyfe2.backends`` entry point."""
    root = tmp_path_factory.mktemp("plugin")
    pkg = root / "src_pkg"
    (pkg / "linlaw").mkdir(parents=True)
    (pkg / "linlaw" / "__init__.py").write_text(PLUGIN)
    (pkg / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "linlaw"
        version = "0.1"
        [project.entry-points."polyfe2.backends"]
        linear-isotropic = "linlaw:LinearIsotropic"
    '''))
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(pkg)], check=True, capture_output=True, timeout=300)
    return site


def test_builtins_are_listed():
    names = available()
    assert names["elastic"] == "built-in" and names["taylor"] == "built-in"


def test_unknown_name_is_an_input_error():
    with pytest.raises(InputError, match="unknown backend 'nope'; available: .*elastic.*taylor"):
        get("nope")


def test_third_party_backend_is_found_and_used(plugin_site, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_site), str(SRC)]))
    listing = subprocess.run([sys.executable, "-m", "polyfe2.cli", "backends"], capture_output=True,
                             text=True, env=env, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "linear-isotropic" in listing.stdout and "linlaw:LinearIsotropic" in listing.stdout
    # a run with it: homogeneous grid, uniaxial stress → P_11 = E ε_11 (small strain)
    sys.path.insert(0, str(Path(__file__).parents[1] / "solver"))
    import numpy as np
    from solver_cases import AL_PLASTIC, phase, uniaxial_x, write_case

    path = write_case(tmp_path, np.zeros((2, 1, 1), dtype=int), {"Al": phase(plastic=AL_PLASTIC)},
                      [("Al", [[1, 0, 0, 0]])], [uniaxial_x(rate=1e-4, t=1.0, N=1)],
                      backend="linear-isotropic", backend_options={"E": 50e9, "nu": 0.25}, validate=False)
    run = subprocess.run([sys.executable, "-m", "polyfe2.cli", "run", str(path), "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    from polyfe2.io import read_curve

    curve = read_curve(tmp_path / "results" / "case_curve.csv")
    assert curve["P_11_MPa"][-1] == pytest.approx(50e3 * 1e-4, rel=1e-4)
    assert curve["F_22"][-1] - 1 == pytest.approx(-0.25 * 1e-4, rel=1e-3)
