"""Material library: cards, units, and the material functions of MODEL §3-§5, §10 (incl. V5)."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from solver.materials import (
    apply_overrides,
    barrier_increase_eV,
    conductivity,
    conductivity_scaled,
    creep_coefficient,
    diffusivity,
    equilibrium_capacity_under_pressure,
    equilibrium_potential,
    load_library,
    swelling_ratio,
    yield_stress,
    youngs_modulus,
)
from solver.units import Q_, F, R, k_B, magnitude, parse_quantity

T_ROOM = 298.15
KT_EV = magnitude(k_B, "eV/K") * T_ROOM


@pytest.fixture(scope="module")
def lib():
    return load_library()


# --- V5: strain-dependent barrier and diffusivity (3.4), (3.5) ------------------------------


def test_v5_barrier_increase(lib):
    host = lib["Si"].host
    A_b, s0 = magnitude(host.A_b, "eV"), host.s0
    assert barrier_increase_eV(-0.05, A_b, s0) == pytest.approx(0.05, abs=0.01)
    assert barrier_increase_eV(-0.10, A_b, s0) == pytest.approx(0.55, abs=0.02)
    strains = np.array([0.05, 0.01, 0.0, -0.01, -0.9 * s0])  # tension, small compression
    np.testing.assert_array_equal(barrier_increase_eV(strains, A_b, s0), 0.0)

    si = lib["Si"]
    ratio = diffusivity(si, 0.5, -0.10, T_ROOM) / diffusivity(si, 0.5, 0.0, T_ROOM)
    assert ratio == pytest.approx(np.exp(-barrier_increase_eV(-0.10, A_b, s0) / KT_EV), rel=1e-10)
    assert ratio == pytest.approx(np.exp(-0.55 / KT_EV), rel=0.1)  # ≈ 5e-10

    # Arrhenius temperature factor, and D0 -> D1 across θ
    T = 328.15
    E_D = magnitude(si.host.E_D, "J/mol")
    factor = diffusivity(si, 0.3, 0.0, T) / diffusivity(si, 0.3, 0.0, T_ROOM)
    assert factor == pytest.approx(np.exp(-E_D / magnitude(R, "J/(mol*K)") * (1 / T - 1 / T_ROOM)))
    assert diffusivity(si, 0.0, 0.0, T_ROOM) == pytest.approx(magnitude(si.host.D0, "um^2/s"))
    assert diffusivity(si, 1.0, 0.0, T_ROOM) == pytest.approx(magnitude(si.host.D1, "um^2/s"))


# --- open-circuit potentials -----------------------------------------------------------------


def test_si_ocv_monotone_and_ends(lib):
    ocv = lib["Si"].host.ocv
    theta = np.linspace(0, 1, 10001)
    assert ocv(0.0) == pytest.approx(0.8633)
    assert np.all(np.diff(ocv(theta)) < 0)


def test_graphite_ocv_values(lib):
    ocv = lib["graphite"].host.ocv

    def chen2020(x):
        return (
            1.9793 * np.exp(-39.3631 * x)
            + 0.2482
            - 0.0909 * np.tanh(29.8538 * (x - 0.1234))
            - 0.04478 * np.tanh(14.9159 * (x - 0.2769))
            - 0.0205 * np.tanh(30.4444 * (x - 0.6103))
        )

    x = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(ocv(x), chen2020(x), rtol=1e-12)
    # by hand: U(0) = 1.9793 + 0.2482 + 0.0908 + 0.0446 + 0.0205, U(1) = 0.2482 - 0.0909 - ...
    np.testing.assert_allclose(ocv(np.array([0.0, 0.5, 1.0])), [2.3834, 0.1331, 0.0920], atol=5e-4)


@pytest.mark.parametrize("name", ["Si", "graphite", "ideal_host", "Mg2Si"])
def test_ocv_derivative_matches_finite_difference(lib, name):
    ocv = lib[name].host.ocv
    theta, h = np.linspace(0.05, 0.95, 19), 1e-6
    np.testing.assert_allclose(
        ocv.derivative(theta), (ocv(theta + h) - ocv(theta - h)) / (2 * h), rtol=1e-5, atol=1e-8
    )


def test_ideal_ocv_gives_fick(lib):
    # θ(1-θ) F/(RT) (-dU/dθ) = 1: the lattice-gas flux (3.3) is J = -D c_max ∇θ
    ocv = lib["ideal_host"].host.ocv
    theta = np.linspace(0.01, 0.99, 50)
    thermal = magnitude(R * Q_(ocv.temperature, "K") / F, "V")
    np.testing.assert_allclose(theta * (1 - theta) / thermal * -ocv.derivative(theta), 1.0)


def test_numpy_and_ufl_agree(lib):
    """Each function evaluated on numpy arrays and as a UFL expression (compiled by DOLFINx)."""
    from mpi4py import MPI

    dolfinx = pytest.importorskip("dolfinx")
    import ufl
    from dolfinx import fem

    def evaluate(x):
        theta, eps, T = 0.02 + 0.96 * x, -0.12 * x, T_ROOM + 40 * x
        si, el = lib["Si"], lib["LPSCl"]
        return [
            lib["Si"].host.ocv(theta),
            lib["graphite"].host.ocv(theta),
            lib["ideal_host"].host.ocv(theta),
            lib["graphite"].host.ocv.derivative(theta),
            lib["ideal_host"].host.ocv.derivative(theta),
            equilibrium_potential(si, theta, -500.0 * x),
            np.log(diffusivity(si, theta, eps, T)) if isinstance(x, np.ndarray)
            else ufl.ln(diffusivity(si, theta, eps, T)),
            conductivity(el, T),
            youngs_modulus(si, theta),
            yield_stress(si, theta),
            swelling_ratio(si, theta),
            creep_coefficient(lib["Li"], T),
        ]

    mesh = dolfinx.mesh.create_unit_interval(MPI.COMM_SELF, 8)
    n = len(evaluate(np.zeros(1)))
    V = fem.functionspace(mesh, ("Lagrange", 1, (n,)))
    u = fem.Function(V)
    u.interpolate(fem.Expression(ufl.as_vector(evaluate(ufl.SpatialCoordinate(mesh)[0])),
                                 V.element.interpolation_points))
    x = V.tabulate_dof_coordinates()[:, 0]
    expected = np.array(evaluate(x)).T
    np.testing.assert_allclose(u.x.array.reshape(-1, n), expected, rtol=1e-10)


# --- §10: capacity of a confined Si particle at 0 V ------------------------------------------


@pytest.mark.parametrize(
    "pressure, capacity",
    [("0 GPa", 3198), ("1 GPa", 2465), ("2 GPa", 1650), ("3 GPa", 656), ("5 GPa", 211),
     ("5.5 GPa", 172)],
)
def test_capacity_under_pressure(lib, pressure, capacity):
    theta, cap = equilibrium_capacity_under_pressure(lib["Si"], pressure)
    assert cap.m_as("mA*h/g") == pytest.approx(capacity, rel=0.01)
    # at that θ the stress-corrected potential (3.2) with σ_h = -p is 0 V
    if theta < 1:
        sigma_h = -parse_quantity(pressure, "MPa", "p").m_as("MPa")
        assert equilibrium_potential(lib["Si"], theta, sigma_h) == pytest.approx(0, abs=1e-9)


def test_capacity_ends(lib):
    # U_ocv(0) F / Ω = 9.25 GPa suppresses all lithiation
    assert equilibrium_capacity_under_pressure(lib["Si"], "10 GPa")[0] == 0.0
    assert equilibrium_capacity_under_pressure(lib["graphite"], "0.5 GPa")[0] == 1.0
    theta, _ = equilibrium_capacity_under_pressure(lib["ideal_host"], "1 GPa")
    assert 0 < theta < 1


def test_mechanics_and_creep_helpers(lib):
    si = lib["Si"]
    np.testing.assert_allclose(youngs_modulus(si, np.array([0, 0.5, 1])), [160e3, 100e3, 40e3])
    np.testing.assert_allclose(yield_stress(si, np.array([0, 1])), [1750, 500])
    assert swelling_ratio(si, 1.0) == pytest.approx(1 + 9.0e-6 * 2.78e5)
    assert creep_coefficient(lib["Li"], T_ROOM) == pytest.approx(7.7e-3)  # s^-1 MPa^-n
    with pytest.raises(ValueError, match="material 'graphite' has no plasticity"):
        yield_stress(lib["graphite"], 0.5)
    with pytest.raises(ValueError, match="material 'Cu' is a conductor, not a host"):
        diffusivity(lib["Cu"], 0.5, 0.0, T_ROOM)


def test_conductivity_arrhenius_and_scaling(lib):
    el = lib["LPSCl"]
    assert conductivity(el, T_ROOM) == pytest.approx(0.19)  # 1.9 mS/cm
    assert conductivity(el, 328.15) / conductivity(el, T_ROOM) == pytest.approx(
        np.exp(-0.36 / magnitude(k_B, "eV/K") * (1 / 328.15 - 1 / T_ROOM))
    )
    assert conductivity_scaled(el, T_ROOM) == pytest.approx(0.19e6)  # A/m^2 per V/um


# --- library, overrides, errors --------------------------------------------------------------


def test_library_cards(lib):
    expected = {"Si", "graphite", "Ag", "Mg2Si", "ideal_host", "LPSCl", "LPSCl1.5", "LGPS",
                "LSnPS", "Cu", "Ti", "Al2O3", "SiO2", "Li"}
    assert expected <= set(lib)
    for card in lib.values():
        assert card.sources and all(s.strip() for s in card.sources)
        assert (card.host is not None) == (card.kind == "host")
        assert (card.electrolyte is not None) == (card.kind == "electrolyte")
        assert (card.metal is not None) == (card.kind == "metal")
    assert "i0_alloy" in lib["Si"].calibrated
    assert lib["Li"].metal.molar_volume.m_as("cm^3/mol") == pytest.approx(13.0)
    ideal = lib["ideal_host"].host
    assert ideal.A_b is None and ideal.D0 == ideal.D1 and ideal.E_D.m_as("eV") == 0


def test_user_file_merges_on_top(lib, tmp_path: Path):
    user = tmp_path / "mine.yaml"  # tweak one Si value, add a copy of Mg2Si under a new name
    cards = {"Si": {"D1": "1e-15 m^2/s"}, "Mg2Si_b": dict(lib["Mg2Si"].spec)}
    user.write_text(yaml.safe_dump(cards))
    merged = load_library(extra=[user])
    assert merged["Si"].host.D1.m_as("m^2/s") == pytest.approx(1e-15)
    assert merged["Si"].host.D0 == lib["Si"].host.D0
    assert merged["Mg2Si_b"].host.c_max == lib["Mg2Si"].host.c_max


def test_overrides(lib):
    si = apply_overrides(lib["Si"], {"i0_alloy": "2 mA/cm^2", "alpha": 0.4, "T_ref": "25 degC"})
    assert si.host.i0_alloy.m_as("A/m^2") == pytest.approx(20.0)
    assert si.host.alpha == 0.4 and si.host.T_ref.m_as("K") == pytest.approx(298.15)
    assert si.overridden == ("i0_alloy", "alpha", "T_ref")
    assert lib["Si"].host.i0_alloy.m_as("A/m^2") == pytest.approx(10.0)  # original unchanged


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"i0_aloy": "2 mA/cm^2"}, r"material 'Si'.*unknown field 'i0_aloy'.*mean 'i0_alloy'"),
        ({"i0_alloy": "2 mA"}, r"material 'Si', field 'i0_alloy'.*wrong dimension"),
        ({"i0_alloy": "2"}, r"material 'Si', field 'i0_alloy'.*unit is missing"),
        ({"D0": "-1e-18 m^2/s"}, r"material 'Si', field 'D0': must be > 0"),
        ({"poisson_ratio": 0.5}, r"material 'Si', field 'poisson_ratio': must be in \(0, 0.5\)"),
        ({"s0": None}, r"material 'Si', field 's0'"),
        ({"ocv": {"type": "polynomial", "coefficients": ["1 V", "0 V"]}},
         r"material 'Si', field 'ocv'.*decrease"),
    ],
)
def test_bad_overrides(lib, overrides, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(lib["Si"], overrides)


def test_bad_cards(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("X: {kind: conductor, density: '1 kg/m^3', youngs_modulus: '1 GPa'}\n")
    with pytest.raises(ValueError, match=r"material 'X', field 'sources'"):
        load_library(bad, [])
    bad.write_text("X: {kind: insulator, density: '1 kg/m^3', youngs_modulus: '1 GPa', "
                   "sources: [handbook]}\n")
    with pytest.raises(ValueError, match=r"material 'X': required field 'poisson_ratio'"):
        load_library(bad, [])
    bad.write_text("X: {kind: alloy}\n")
    with pytest.raises(ValueError, match=r"material 'X', field 'kind'"):
        load_library(bad, [])


@pytest.mark.parametrize(
    "text, expected, message",
    [
        ("50", "Pa", "unit is missing"),
        (50, "Pa", "unit is missing"),
        ("50 MPx", "Pa", "unknown unit 'MPx'"),
        ("50 s", "Pa", "wrong dimension"),
        ("MPa", "Pa", "must start with a number"),
        ("0.3 GPa", "", "wrong dimension"),
        ("50 MPa/", "Pa", "cannot parse"),
    ],
)
def test_parse_quantity_errors(text, expected, message):
    with pytest.raises(ValueError, match=rf"stack_pressure: expected .*{message}"):
        parse_quantity(text, expected, "stack_pressure")


def test_parse_quantity_values():
    assert parse_quantity("50 MPa", "Pa", "p").m_as("Pa") == 5e7
    assert parse_quantity("25 degC", "K", "T").m_as("K") == pytest.approx(298.15)
    assert parse_quantity("0.58 eV", "kJ/mol", "E").m_as("kJ/mol") == pytest.approx(55.96, 1e-3)
    assert parse_quantity(0.3, "", "nu").m_as("") == 0.3
    with pytest.raises(ValueError, match="cannot express"):
        magnitude(Q_(1.0, "MPa"), "um^2/s")
