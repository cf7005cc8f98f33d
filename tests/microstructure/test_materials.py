"""The shipped parameter sets: valid phase entries with the values of their sources."""
import pytest

from polyfe2.constitutive.parameters import check_phase
from polyfe2.errors import InputError
from polyfe2.microstructure.materials import available_phases, load_phase, soft_phase


def test_shipped_sets_are_valid_phases():
    assert {"aluminium", "aa6022_t4"} <= set(available_phases())
    for name in available_phases():
        assert check_phase(load_phase(name), file=name, name=name)["type"] == "phenopowerlaw"


def test_aa6022_t4_is_table_3_of_paper_000():
    p = load_phase("aa6022_t4")
    el, pl = p["mechanical"]["elastic"], check_phase(p, file="aa6022_t4", name="AA6022-T4")
    assert (el["C_11"], el["C_12"], el["C_44"]) == (107.3e9, 60.8e9, 28.3e9)
    assert (pl["h_0_sl-sl"], pl["xi_inf_sl"], pl["xi_0_sl"], pl["n_sl"], pl["a_sl"], pl["dot_gamma_0_sl"],
            pl["h_int"]) == (1.02e9, 266e6, 76e6, 20, 3.7, 1e-3, 0)
    assert list(pl["h_sl-sl"]) == [1, 1, 5.123, 0.574, 1.123, 1.123, 1]


def test_unknown_set_and_soft_phase():
    with pytest.raises(InputError, match="unknown parameter set 'steel'"):
        load_phase("steel")
    soft = soft_phase(load_phase("aa6022_t4"), 1e-6)
    assert soft["mechanical"]["elastic"]["C_44"] == pytest.approx(28.3e3)
    assert "plastic" not in soft["mechanical"]
