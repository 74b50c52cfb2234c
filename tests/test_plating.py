"""Plated Li pore filling and creep (MODEL §7, docs/plating.md)."""

from __future__ import annotations

import math

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh

from solver.materials import creep_coefficient, load_library
from solver.physics.plating import (
    PlatedLiProblem,
    PlatingSettings,
    li_pressure,
    pore_width,
    steady_gradient,
    wall_distance,
)

LENGTH, SIDE = 4.0, 0.5  # µm: a thin bar of pore, a 1D problem in 3D
LEFT, RIGHT = 1, 2
PSI_C = 0.95
FARADAY = 96485.33212  # C/mol
# 1 mA/cm² of plating current as a molar Li flux, mol/(m² s)
Q_1MA = 10.0 / FARADAY
# ψ varies by 4e-4 along a compressed bar at steady creep, and the upstream ψ of the creep
# flux (solver.physics.creep) is first order in h: the slope is off by 2e-6 at w = 0.1 µm
SLOPE_RTOL = 1e-5


@pytest.fixture(scope="module")
def li_card():
    return load_library()["Li"]


def bar(comm: MPI.Comm, nx: int = 16):
    """A pore bar [0, 4] × [0, 0.5]² µm with its end faces tagged LEFT and RIGHT."""
    msh = dmesh.create_box(comm, [np.zeros(3), np.array([LENGTH, SIDE, SIDE])], [nx, 2, 2],
                           dmesh.CellType.tetrahedron)
    msh.topology.create_connectivity(2, 3)
    left = dmesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[0], 0.0))
    right = dmesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[0], LENGTH))
    facets = np.concatenate([left, right])
    values = np.concatenate([np.full(len(left), LEFT), np.full(len(right), RIGHT)])
    order = np.argsort(facets)
    tags = dmesh.meshtags(msh, 2, facets[order], values[order].astype(np.int32))
    return msh, ufl.Measure("ds", domain=msh, subdomain_data=tags)


def constant_width(msh, value: float) -> fem.Function:
    w = fem.Function(fem.functionspace(msh, ("DG", 0)))
    w.x.array[:] = value
    return w


def integral(comm, expr, measure) -> float:
    return comm.allreduce(fem.assemble_scalar(fem.form(expr * measure)), op=MPI.SUM)


def pressure_slope(problem: PlatedLiProblem) -> tuple[float, float]:
    """Least-squares slope dp/dx (MPa/µm) over all vertices, and the largest misfit."""
    x = problem.V.tabulate_dof_coordinates()[:, 0]
    p = problem.p_li.x.array
    comm = problem.comm
    xs, ps = np.concatenate(comm.allgather(x)), np.concatenate(comm.allgather(p))
    slope, intercept = np.polyfit(xs, ps, 1)
    return slope, np.max(np.abs(ps - (slope * xs + intercept)))


# -- 1. creep only ----------------------------------------------------------------------


def run_creep(comm, card, settings: PlatingSettings | None = None, steps: int = 8):
    msh, _ = bar(comm)
    problem = PlatedLiProblem(msh, constant_width(msh, 1.0), card, 298.15, settings)
    # overfilled by 2e-4 (p_Li ≈ 44 MPa) for x ≤ 1 µm, empty elsewhere
    problem.set_state(lambda x: np.where(x[0] <= 1.0 + 1e-9, PSI_C + 2e-4, 0.0))
    x = ufl.SpatialCoordinate(msh)
    outside = ufl.conditional(ufl.gt(x[0], 1.0 + 1e-9), 1.0, 0.0)
    history = [(problem.total_li_mol(), problem.max_pressure(), 0,
                integral(comm, problem.psi * outside, problem.dx_lumped), 0.0)]
    dt = 1e-3
    for _ in range(steps):
        converged, iterations = problem.solve(dt)
        assert converged, f"Newton failed at dt = {dt}"
        problem.accept()
        history.append((problem.total_li_mol(), problem.max_pressure(), iterations,
                        integral(comm, problem.psi * outside, problem.dx_lumped),
                        problem.min_psi()))
        dt *= 3
    return problem, history


def test_creep_spreads_conserving_li(li_card) -> None:
    comm = MPI.COMM_WORLD
    problem, history = run_creep(comm, li_card)
    li, p_max, iterations, spread, psi_min = map(np.array, zip(*history, strict=True))
    # P1 ψ of the step: full to x = 1, a linear ramp to 0 at x = 1.25 (mol)
    assert li[0] == pytest.approx((PSI_C + 2e-4) * 1.125 * SIDE**2 * 1e-18 / 13.0e-6, rel=1e-12)
    assert np.all(np.abs(li / li[0] - 1) < 1e-12), np.abs(li / li[0] - 1).max()
    assert p_max[0] == pytest.approx(11100 * 2e-4 / (1 - PSI_C), rel=1e-6)  # 44.4 MPa
    assert np.all(np.diff(p_max) < 0), p_max  # the overpressure relaxes monotonically
    # Li creeps into the empty pores: the overfill 2e-4 of ψ_c (5.6e-5 µm³) leaves x ≤ 1
    excess = 2e-4 * 1.125 * SIDE**2
    assert np.all(np.diff(spread) > 0) and 0.98 * excess < spread[-1] < excess, spread
    assert psi_min[1:].min() > -1e-12
    assert iterations[1:].max() <= 30 and iterations[2:].max() <= 10, iterations


# -- 2. a plating source ----------------------------------------------------------------


def test_source_fills_pores_from_the_plating_face(li_card) -> None:
    comm = MPI.COMM_WORLD
    msh, ds = bar(comm)
    problem = PlatedLiProblem(msh, constant_width(msh, 0.5), li_card, 298.15)
    problem.set_state(0.0)
    flux = 10 * Q_1MA  # 10 mA/cm²
    problem.set_source(flux, ds(LEFT))
    area = SIDE**2 * 1e-12  # m²
    assert problem.source_rate_mol() == pytest.approx(flux * area, rel=1e-12)
    time, dt = 0.0, 2.0
    while time < 100.0 - 1e-9:
        converged, _ = problem.solve(dt)
        assert converged
        problem.accept()
        time += dt
        expected = flux * area * time
        assert problem.total_li_mol() == pytest.approx(expected, rel=1e-12, abs=0)
        assert problem.min_psi() > -1e-12  # ψ ≥ 0 to round-off
        dt = min(2 * dt, 100.0 - time) if time < 100.0 else dt
    # 100 s at 10 mA/cm² plates Ω q t = 1.35 µm of Li: pores fill from the face to ψ_c
    filled_length = problem.volume_per_mol_flux * flux * 100.0 / PSI_C
    x = problem.V.tabulate_dof_coordinates()[:, 0]
    psi = problem.psi.x.array
    assert np.all(psi[x < filled_length - 0.3] > PSI_C - 1e-6)
    assert np.all(psi[x > filled_length + 0.3] < 1e-6)  # the far end stays empty
    assert np.all(psi < PSI_C + 1e-3)  # creep keeps the overfill (p_Li) small
    assert 0.1 < problem.max_pressure() < 500.0


# -- 3. steady creep flux: the power law (7.3) --------------------------------------------


def steady_slab(comm, card, width: float, temperature: float = 298.15,
                settings: PlatingSettings | None = None, flux: float = Q_1MA):
    """Li plated at +q on the left end and removed at −q on the right end of a filled bar:
    at steady state M(G) G = Ω q, a linear p_Li with the slope of `steady_gradient`."""
    msh, ds = bar(comm)
    problem = PlatedLiProblem(msh, constant_width(msh, width), card, temperature, settings)
    problem.set_source(flux, ds(LEFT))
    problem.add_source(-flux, ds(RIGHT))
    problem.set_state(PSI_C + (1 - PSI_C) * 100.0 / 11100.0)  # p_Li = 100 MPa
    li0 = problem.total_li_mol()
    iterations = []
    for dt in (1.0, 10.0, 100.0, 1000.0):
        converged, its = problem.solve(dt)
        assert converged
        problem.accept()
        iterations.append(its)
    assert problem.total_li_mol() == pytest.approx(li0, rel=1e-13)
    psi_mean = problem.total_li_volume() / problem.volume
    expected = steady_gradient(problem.volume_per_mol_flux * flux, psi_mean, width,
                               problem.creep_coefficient, problem.n,
                               problem.settings.gradient_floor)
    return problem, expected, iterations


@pytest.mark.parametrize("width", [1.0, 0.1])
def test_steady_creep_flux_follows_the_power_law(li_card, width) -> None:
    problem, expected, _ = steady_slab(MPI.COMM_WORLD, li_card, width)
    slope, misfit = pressure_slope(problem)
    assert -slope == pytest.approx(expected, rel=SLOPE_RTOL)
    assert misfit < 1e-4 * expected * LENGTH  # linear profile
    # closed form for G_0 = 0: G = (2^n Ω q / (ψ A w^(n+1)))^(1/n)
    n, A = problem.n, problem.creep_coefficient
    psi = PSI_C + (1 - PSI_C) * 100.0 / 11100.0
    closed = (2**n * problem.volume_per_mol_flux * Q_1MA / (psi * A * width ** (n + 1))) ** (1 / n)
    assert -slope == pytest.approx(closed, rel=1e-4)


def test_steady_gradient_scales_as_flux_to_one_over_n(li_card) -> None:
    comm = MPI.COMM_WORLD
    low, _, _ = steady_slab(comm, li_card, 1.0, flux=Q_1MA)
    high, _, _ = steady_slab(comm, li_card, 1.0, flux=10 * Q_1MA)
    ratio = pressure_slope(high)[0] / pressure_slope(low)[0]
    assert ratio == pytest.approx(10 ** (1 / 6.56), rel=1e-4)


# -- 4. Arrhenius ---------------------------------------------------------------------------


def test_creep_coefficient_is_arrhenius(li_card) -> None:
    R = 8.314462618
    expected = math.exp(37e3 / R * (1 / 298.15 - 1 / 328.15))
    ratio = creep_coefficient(li_card, 328.15) / creep_coefficient(li_card, 298.15)
    assert ratio == pytest.approx(expected, rel=1e-9)
    assert creep_coefficient(li_card, 298.15) == pytest.approx(7.7e-3, rel=1e-12)
    # the steady pressure gradient of a hot cell is lower by A_cr ratio^(1/n)
    comm = MPI.COMM_WORLD
    cold, _, _ = steady_slab(comm, li_card, 1.0, 298.15)
    hot, expected_hot, _ = steady_slab(comm, li_card, 1.0, 328.15)
    assert hot.creep_coefficient / cold.creep_coefficient == pytest.approx(expected, rel=1e-9)
    g_ratio = pressure_slope(hot)[0] / pressure_slope(cold)[0]
    assert g_ratio == pytest.approx(expected ** (-1 / 6.56), rel=1e-4)


# -- 5. Newton robustness and the regularisation -------------------------------------------


@pytest.mark.parametrize("G0", [1e-6, 1e-3])
def test_newton_converges_at_n_6_56_with_small_floor(li_card, G0) -> None:
    settings = PlatingSettings(gradient_floor=G0)
    problem, expected, iterations = steady_slab(MPI.COMM_WORLD, li_card, 0.1, settings=settings)
    assert problem.n == pytest.approx(6.56)
    assert max(iterations) <= 25, iterations  # from a flat pressure (G = G_0) at step 1
    assert -pressure_slope(problem)[0] == pytest.approx(expected, rel=SLOPE_RTOL)


def test_regularisation_does_not_change_the_answer(li_card) -> None:
    comm = MPI.COMM_WORLD
    reference, _ = run_creep(comm, li_card, PlatingSettings(gradient_floor=1e-3,
                                                            pressure_smoothing=1e-2))
    for settings in (PlatingSettings(gradient_floor=1e-5, pressure_smoothing=1e-2),
                     PlatingSettings(gradient_floor=1e-3, pressure_smoothing=1e-3)):
        other, _ = run_creep(comm, li_card, settings)
        d_psi = np.abs(other.psi.x.array - reference.psi.x.array).max()
        d_p = np.abs(other.p_li.x.array - reference.p_li.x.array).max()
        # measured: ≈ 3e-11 / 1.4e-6 MPa (G_0), 2.5e-9 / 1.2e-5 MPa (δ_p)
        assert d_psi < 1e-8 and d_p < 1e-4, (settings, d_psi, d_p)


def test_smoothed_pressure_law() -> None:
    K, delta = 11100.0, 1e-2
    psi = np.array([0.0, 0.5, PSI_C, PSI_C + 1e-4, 1.0])
    p = li_pressure(psi, K, PSI_C, delta)
    exact = K * np.maximum(psi - PSI_C, 0) / (1 - PSI_C)  # (7.2)
    assert np.all(np.abs(p - exact) <= delta / 2 + 1e-15)
    assert p[2] == pytest.approx(delta / 2) and p[0] < 1e-9


# -- pore width ------------------------------------------------------------------------------


def test_pore_width_of_a_slit(comm) -> None:
    """A slit between walls z = 0 and z = 1: the local thickness is the slit width."""
    msh = dmesh.create_box(comm, [np.zeros(3), np.array([2.0, 2.0, 1.0])], [4, 4, 8],
                           dmesh.CellType.tetrahedron)
    msh.topology.create_connectivity(2, 3)
    walls = dmesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[2], 0)
                                           | np.isclose(x[2], 1))
    cells = np.arange(msh.topology.index_map(3).size_local, dtype=np.int32)
    mid = dmesh.compute_midpoints(msh, 3, cells)
    d = wall_distance(msh, mid, walls)
    assert np.allclose(d, np.minimum(mid[:, 2], 1 - mid[:, 2]), atol=1e-13)
    w = pore_width(msh, walls)
    local = w.x.array[: len(cells)]
    assert comm.allreduce(local.min(), op=MPI.MIN) > 0.85
    assert comm.allreduce(local.max(), op=MPI.MAX) <= 1.0
    plain = pore_width(msh, walls, local_thickness=False).x.array[: len(cells)]
    assert comm.allreduce(plain.min(), op=MPI.MIN) < 0.2  # next to a wall: 2 d only
    capped = pore_width(msh, walls, cap=0.5).x.array
    assert np.all(capped <= 0.5 + 1e-15)
