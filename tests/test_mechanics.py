"""Mechanics (MODEL §6): diffusion-induced stress in a free sphere (V3), swelling in a
spring, free swelling, Newton's convergence, boundary conditions and the solid submesh."""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh
from scipy.optimize import brentq

from meshes import Packing, SingleParticleSpec, TaggedMesh, build_mesh
from solver.materials import apply_overrides, load_library, swelling_ratio, youngs_modulus
from solver.physics.mechanics import (
    FixedBottom,
    MechanicsProblem,
    MechanicsSettings,
    Pressure,
    Roller,
    SolidDomain,
    Spring,
    Symmetry,
    ViscoplasticMechanicsProblem,
    transfer,
    viscoplastic_increment,
)
from solver.reference_solutions import (
    sphere_constant_flux,
    swelling_sphere_in_spring_finite,
    swelling_sphere_in_spring_small,
    viscoplastic_confined_swelling,
    zhang_shyy_sastry_stresses,
)

CARDS = load_library()
SYMMETRY = [Symmetry(f"symmetry_{axis}") for axis in "xyz"]
RADIUS = 1.0


def octant(material: str, cache: Path, size_surface: float, size_center: float,
           cards: dict | None = None):
    """The octant of a sphere (radius 1 µm) as a solid domain, with a P1 θ on it."""
    spec = SingleParticleSpec(material, RADIUS, octant=True, size_surface=size_surface,
                              size_center=size_center)
    tagged = build_mesh(spec, MPI.COMM_WORLD, cache, progress=False)
    domain = SolidDomain.from_tagged(tagged, cards or CARDS)
    return domain, fem.Function(fem.functionspace(domain.mesh, ("Lagrange", 1)), name="theta")


def volume_mean(problem: MechanicsProblem, expression) -> float:
    volume = problem.integral(fem.Constant(problem.mesh, 1.0))
    return problem.integral(expression) / volume


# --- V3: diffusion-induced stress in a free sphere ------------------------------------------


def v3_error(size: tuple[float, float], cache: Path) -> tuple[float, float]:
    """(max over cell midpoints of |σ_r − σ_r^ZSS|, |σ_θ − σ_θ^ZSS|, max nodal error of the
    P1 σ_h), both divided by the peak stress of the closed form."""
    card = CARDS["ideal_host"]
    host = card.host
    D = host.D0.m_as("um^2/s")
    omega_c = (host.molar_volume_li * host.c_max).m_as("")
    E, nu = card.youngs_modulus.m_as("MPa"), card.poisson_ratio
    # θ(r) of a constant influx (V2's series) at Dt/R² = 0.1: θ = 0.03 at the centre and
    # 0.24 at the surface; tabulated once (the series is slow), linear in between.
    table_r = np.linspace(0.0, RADIUS, 4001)
    table_theta = sphere_constant_flux(table_r, 0.1 * RADIUS**2 / D, RADIUS, D, 0.5 * D / RADIUS)

    def theta_of_r(r):
        return np.interp(r, table_r, table_theta)

    domain, theta = octant("ideal_host", cache, *size)
    theta.interpolate(lambda x: theta_of_r(np.linalg.norm(x, axis=0)))
    settings = MechanicsSettings(kinematics="small", eigenstrain="linear")
    problem = MechanicsProblem(domain, theta, SYMMETRY, settings)
    assert problem.solve().converged

    x, sigma = problem.stress_at_cell_midpoints()
    r = np.linalg.norm(x, axis=1)
    n = x / r[:, None]
    sigma_r = np.einsum("ni,nij,nj->n", n, sigma, n)
    sigma_t = (np.trace(sigma, axis1=1, axis2=2) - sigma_r) / 2  # σ_θ = σ_φ
    exact_r, exact_t = zhang_shyy_sastry_stresses(r, theta_of_r, RADIUS, E, nu, omega_c)
    grid_r, grid_t = zhang_shyy_sastry_stresses(table_r[::10], theta_of_r, RADIUS, E, nu, omega_c)
    peak = max(np.abs(grid_r).max(), np.abs(grid_t).max())
    comm = MPI.COMM_WORLD
    error = comm.allreduce(max(np.abs(sigma_r - exact_r).max(), np.abs(sigma_t - exact_t).max()),
                           op=MPI.MAX)
    nodes = np.linalg.norm(problem.sigma_h.function_space.tabulate_dof_coordinates(), axis=1)
    node_r, node_t = zhang_shyy_sastry_stresses(nodes, theta_of_r, RADIUS, E, nu, omega_c)
    nodal = comm.allreduce(np.abs(problem.sigma_h.x.array - (node_r + 2 * node_t) / 3).max(),
                           op=MPI.MAX)
    return error / peak, nodal / peak


def test_v3_swelling_is_the_closed_forms_chemical_strain() -> None:
    """J_c − 1 = Ω c_max θ, so the "linear" eigenstrain (J_c − 1)/3 is ZSS's Ωc/3."""
    card = CARDS["ideal_host"]
    omega_c = (card.host.molar_volume_li * card.host.c_max).m_as("")
    theta = np.linspace(0.0, 1.0, 11)
    assert np.allclose(swelling_ratio(card, theta) - 1, omega_c * theta, rtol=1e-14)
    assert omega_c == pytest.approx(3.497e-6 * 2.29e4)  # ZSS's LiMn2O4: Ω, c_max


def test_v3_free_sphere_diffusion_induced_stress(tmp_path_factory) -> None:
    cache = tmp_path_factory.mktemp("meshes")
    sizes = [(0.2, 0.3), (0.1, 0.2), (0.07, 0.15)]  # (surface, centre) element sizes, µm
    errors = [v3_error(size, cache) for size in sizes]
    stress = [e for e, _ in errors]
    assert stress[-1] < 0.02 and errors[-1][1] < 0.02, errors
    assert stress[0] > stress[1] > stress[2], errors  # decreases with refinement


# --- uniform swelling: free, and in a spring --------------------------------------------------


@pytest.mark.parametrize("kinematics", ["finite", "small"])
def test_free_uniform_swelling_is_stress_free(kinematics, tmp_path_factory) -> None:
    """Uniform θ, free octant: u = (J_c^(1/3) − 1) X, J = J_c and σ = 0 (both kinematics,
    with the default "stretch" eigenstrain), here for Si at 3.2× volume."""
    domain, theta = octant("Si", tmp_path_factory.mktemp("meshes"), 0.25, 0.35)
    theta.x.array[:] = 0.9
    problem = MechanicsProblem(domain, theta, SYMMETRY, MechanicsSettings(kinematics=kinematics))
    assert problem.solve().converged
    Jc = float(swelling_ratio(CARDS["Si"], 0.9))
    X = ufl.SpatialCoordinate(domain.mesh)
    F = ufl.Identity(3) + ufl.grad(problem.u)
    free = problem.u - (Jc ** (1 / 3) - 1) * X
    assert np.sqrt(volume_mean(problem, ufl.dot(free, free))) < 1e-10
    assert np.sqrt(volume_mean(problem, (ufl.det(F) - Jc) ** 2)) < 1e-9 * Jc
    if kinematics == "small":
        assert abs(volume_mean(problem, ufl.tr(ufl.sym(ufl.grad(problem.u)))) - 3 * (
            Jc ** (1 / 3) - 1)) < 1e-10
    E = float(youngs_modulus(CARDS["Si"], 0.9))
    for output in (problem.sigma_h, problem.von_mises):
        assert np.abs(output.x.array).max() < 1e-9 * E
    assert np.abs(problem.eps_lat.x.array).max() < 1e-12


def test_uniform_swelling_in_a_spring(tmp_path_factory) -> None:
    """Uniformly lithiated sphere held by t = −K_eff (u·n/R) n: σ_h against the closed forms
    (small strain; and the exact homogeneous finite-strain state), and finite → small as
    the swelling goes to zero."""
    domain, theta = octant("Si", tmp_path_factory.mktemp("meshes"), 0.15, 0.3)
    card, K_eff = CARDS["Si"], 1.0e4  # MPa
    spring = [*SYMMETRY, Spring("surface", K_eff, RADIUS)]
    problems = {kinematics: MechanicsProblem(domain, theta, spring,
                                             MechanicsSettings(kinematics=kinematics))
                for kinematics in ("small", "finite")}

    def pressures(value: float) -> dict[str, tuple[float, float]]:
        """(FE, closed form) volume-mean σ_h per kinematics at θ = value."""
        theta.x.array[:] = value
        E, nu = float(youngs_modulus(card, value)), card.poisson_ratio
        Jc = float(swelling_ratio(card, value))
        exact = {"small": swelling_sphere_in_spring_small(Jc ** (1 / 3) - 1, E, nu, K_eff)[1],
                 "finite": swelling_sphere_in_spring_finite(Jc, E, nu, K_eff)[1]}
        result = {}
        for kinematics, problem in problems.items():
            assert problem.solve().converged
            result[kinematics] = (volume_mean(problem, problem.sigma_h), exact[kinematics])
        return result

    # θ = 0.5: J_c = 2.25; the facets of the sphere (inscribed) weaken the spring by O(h²)
    for fe, exact in pressures(0.5).values():
        assert fe == pytest.approx(exact, rel=5e-3)
        assert exact < -500.0
    # finite strain tends to small strain as the swelling vanishes (ratio ~ e* = J_c^(1/3) − 1)
    gaps = []
    for value in (0.04, 0.01, 0.0025):
        p = pressures(value)
        gaps.append(abs(p["finite"][0] / p["small"][0] - 1))
        assert abs(p["finite"][1] / p["small"][1] - 1) < 2 * gaps[-1] + 1e-6
    assert gaps[-1] < 2e-3 and gaps[0] / gaps[1] > 3.5 and gaps[1] / gaps[2] > 3.5, gaps


# --- Newton -----------------------------------------------------------------------------------


def shell_problem(cache: Path, linear_solver: str = "mumps",
                  kinematics: str = "finite") -> MechanicsProblem:
    """Si octant with a fully lithiated shell over a pristine core, in a spring."""
    domain, theta = octant("Si", cache, 0.15, 0.3)
    theta.interpolate(lambda x: 0.5 * (1 + np.tanh((np.linalg.norm(x, axis=0) - 0.8) / 0.05)))
    settings = MechanicsSettings(kinematics=kinematics, linear_solver=linear_solver)
    return MechanicsProblem(domain, theta, [*SYMMETRY, Spring("surface", 1.0e4, RADIUS)],
                            settings)


def test_newton_converges_quadratically(tmp_path_factory) -> None:
    problem = shell_problem(tmp_path_factory.mktemp("meshes"))
    result = problem.solve()
    assert result.converged and result.substeps == 1
    residuals = np.array(result.residuals)
    assert len(residuals) <= 6, residuals
    # convergence order log(r_{k+1}/r_k) / log(r_k/r_{k-1}) over the last steps
    logs = np.log(residuals)
    order = np.diff(logs)[1:] / np.diff(logs)[:-1]
    assert np.all(order[-2:] > 1.8), (residuals, order)
    # a second solve with a small change of θ starts from the last u: few iterations
    problem.theta.x.array[:] *= 1.01
    again = problem.solve()
    assert again.converged and again.newton_iterations <= 3, again


def test_gamg_with_rigid_body_modes_matches_mumps(tmp_path_factory) -> None:
    cache = tmp_path_factory.mktemp("meshes")
    direct = shell_problem(cache)
    iterative = shell_problem(cache, linear_solver="gamg")
    assert direct.solve().converged
    result = iterative.solve()
    assert result.converged and result.linear_iterations < 50 * result.newton_iterations
    scale = np.abs(direct.sigma_h.x.array).max()
    assert np.abs(iterative.sigma_h.x.array - direct.sigma_h.x.array).max() < 1e-6 * scale


# --- boundary conditions on a box, and the solid submesh of a mesh with pores -----------------

SOLID, PORE = 1, 2
BOTTOM, LATERAL, WALL = 3, 4, 5


def column_with_pore(comm: MPI.Comm, n: int = 4, solid: str = "conductor:Cu") -> TaggedMesh:
    """Unit box: `solid` (a region name) below z = 1/2, pore above; "CP:Cu" the pore wall
    z = 1/2."""
    msh = dmesh.create_box(comm, [np.zeros(3), np.ones(3)], [n, n, n],
                           dmesh.CellType.tetrahedron, ghost_mode=dmesh.GhostMode.shared_facet)
    imap = msh.topology.index_map(3)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    values = np.full(len(cells), PORE, dtype=np.int32)
    values[dmesh.locate_entities(msh, 3, lambda x: x[2] <= 0.5 + 1e-12)] = SOLID
    msh.topology.create_connectivity(2, 3)
    groups = {BOTTOM: dmesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[2], 0.0)),
              LATERAL: dmesh.locate_entities_boundary(
                  msh, 2, lambda x: np.isclose(x[0], 0) | np.isclose(x[0], 1)
                  | np.isclose(x[1], 0) | np.isclose(x[1], 1)),
              WALL: dmesh.locate_entities(msh, 2, lambda x: np.isclose(x[2], 0.5))}
    facets = np.concatenate(list(groups.values()))
    tags = np.concatenate([np.full(len(f), tag, dtype=np.int32) for tag, f in groups.items()])
    order = np.argsort(facets)
    box = Packing(centres=np.zeros((0, 3)), radii=np.zeros(0), family=np.zeros(0, int),
                  parent=np.zeros(0, int), box_lo=(0.0, 0.0, 0.0), box_hi=(1.0, 1.0, 1.0),
                  n_families=1)
    return TaggedMesh(mesh=msh, cell_tags=dmesh.meshtags(msh, 3, cells, values),
                      facet_tags=dmesh.meshtags(msh, 2, facets[order], tags[order]),
                      regions={solid: SOLID, "pore": PORE},
                      interfaces={"bottom": BOTTOM, "lateral": LATERAL, "CP:Cu": WALL},
                      particles=box, particle_of_cell=np.full(len(cells), -1),
                      source=Path("column"))


@pytest.mark.parametrize("kinematics", ["small", "finite"])
def test_confined_column_under_pressure(kinematics) -> None:
    """Solid half of a box with pores above: rollers on the four lateral faces (one facet
    group, several planes), u_z = 0 at the bottom and a pressure p on the pore wall give
    uniaxial strain: σ_zz = −p, u_z(top) = (λ_z − 1) H with λ_z from the law."""
    tagged = column_with_pore(MPI.COMM_WORLD)
    domain = SolidDomain.from_tagged(tagged, CARDS)
    assert domain.entity_map is not None  # a submesh: the pore cells are left out
    volume = domain.mesh.comm.allreduce(fem.assemble_scalar(fem.form(
        fem.Constant(domain.mesh, 1.0) * ufl.dx(domain=domain.mesh))), op=MPI.SUM)
    assert volume == pytest.approx(0.5)
    p = fem.Constant(domain.mesh, 0.0)
    theta = fem.Function(fem.functionspace(domain.mesh, ("DG", 0)))  # no host: unused
    problem = MechanicsProblem(domain, theta, [FixedBottom(), Roller("lateral"),
                                               Pressure("CP:Cu", p)],
                               MechanicsSettings(kinematics=kinematics, degree=1))
    card = CARDS["Cu"]
    E, nu = card.youngs_modulus.m_as("MPa"), card.poisson_ratio
    lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
    for pressure in (500.0, 5000.0):
        p.value = pressure
        assert problem.solve().converged
        if kinematics == "small":
            stretch = 1 - pressure / (lam + 2 * mu)
        else:  # Cauchy σ_zz = [μ(λ_z² − 1) + λ ln λ_z]/λ_z = −p on the unchanged area
            stretch = brentq(lambda s, p=pressure: (mu * (s**2 - 1) + lam * np.log(s)) / s + p,
                             0.5, 1.0, xtol=1e-15)
        sigma = problem.stress_at_cell_midpoints()[1]
        sigma_zz = domain.mesh.comm.allgather(sigma[:, 2, 2])
        assert np.allclose(np.concatenate(sigma_zz), -pressure, rtol=1e-8)
        strain = volume_mean(problem, ufl.grad(problem.u)[2, 2])  # ∂u_z/∂Z = λ_z − 1
        assert strain == pytest.approx(stretch - 1, rel=1e-8)


def test_settings_and_domain_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="kinematics"):
        MechanicsSettings(kinematics="large")
    domain, theta = octant("ideal_host", tmp_path, 0.4, 0.4)
    with pytest.raises(ValueError, match="no facet group named 'top'"):
        MechanicsProblem(domain, theta, [Pressure("top", 1.0)])
    with pytest.raises(ValueError, match="not normal to a coordinate axis"):
        MechanicsProblem(domain, theta, [Roller("surface")])


def test_transfer_between_submeshes() -> None:
    """σ_h-like fields go from the solid mesh to a host submesh, θ back (host cells only)."""
    tagged = column_with_pore(MPI.COMM_WORLD)
    domain = SolidDomain.from_tagged(tagged, CARDS)
    lower = dmesh.locate_entities(tagged.mesh, 3, lambda x: x[2] <= 0.25 + 1e-12)
    host, host_map, _, _ = dmesh.create_submesh(tagged.mesh, 3, lower)

    def linear(x):
        return x[0] + 2 * x[1] + 3 * x[2]

    solid_field = fem.Function(fem.functionspace(domain.mesh, ("Lagrange", 1)))
    solid_field.interpolate(linear)
    host_field = fem.Function(fem.functionspace(host, ("Lagrange", 1)))
    transfer(solid_field, domain.entity_map, host_field, host_map)
    x = host_field.function_space.tabulate_dof_coordinates().T
    assert np.allclose(host_field.x.array, linear(x), atol=1e-13)

    back = fem.Function(solid_field.function_space)
    transfer(host_field, host_map, back, domain.entity_map)
    x = back.function_space.tabulate_dof_coordinates().T
    assert np.allclose(back.x.array[x[2] < 0.25 + 1e-9], linear(x)[x[2] < 0.25 + 1e-9])
    assert np.all(back.x.array[x[2] > 0.25 + 1e-9] == 0.0)


# --- viscoplasticity (6.2) --------------------------------------------------------------------


def test_viscoplastic_return_mapping() -> None:
    """The local backward-Euler solve and its derivatives (finite differences)."""
    q, mu, sy = np.array([500.0, 1500.0, 4000.0]), np.array([4e4, 4e4, 6e4]), np.full(3, 1e3)
    delta, dq, dmu = viscoplastic_increment(q, mu, sy, 1e-3, 4.0)
    assert delta[0] == 0.0 and dq[0] == 0.0  # below yield
    z = (q - 3 * mu * delta) / sy - 1
    assert np.allclose(delta[1:], 1e-3 * z[1:] ** 4, rtol=1e-12)
    h = 1e-4
    assert np.allclose(dq, (viscoplastic_increment(q + h, mu, sy, 1e-3, 4.0)[0]
                            - viscoplastic_increment(q - h, mu, sy, 1e-3, 4.0)[0]) / (2 * h),
                       rtol=1e-6, atol=1e-14)
    h = 1e-2
    assert np.allclose(dmu, (viscoplastic_increment(q, mu + h, sy, 1e-3, 4.0)[0]
                             - viscoplastic_increment(q, mu - h, sy, 1e-3, 4.0)[0]) / (2 * h),
                       rtol=1e-6, atol=1e-14)


def confined_swelling(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(FE, ODE) lateral Cauchy stress of a swelling host block on rollers (top free) over
    200 s, θ from 0 to 0.2, constant E and σ_Y = 1 GPa, ε̇_0 = 1e-3 /s, m = 4."""
    card = apply_overrides(CARDS["Si"], {
        "youngs_modulus_lithiated": "160 GPa", "yield_stress_pristine": "1 GPa",
        "yield_stress_lithiated": "1 GPa", "elastic_threshold": 0.0,
        "viscoplastic_rate": "1e-3 1/s"})
    domain = SolidDomain.from_tagged(column_with_pore(MPI.COMM_WORLD, 2, "host:Si"), {"Si": card})
    theta = fem.Function(fem.functionspace(domain.mesh, ("DG", 0)))
    problem = ViscoplasticMechanicsProblem(domain, theta, [FixedBottom(), Roller("lateral")],
                                           MechanicsSettings(degree=1, predictor=False))
    times, theta_rate = np.linspace(0.0, 200.0, steps + 1), 1e-3
    fe = []
    for t in times[1:]:
        theta.x.array[:] = theta_rate * t
        result = problem.solve(times[1])
        assert result.converged and result.newton_iterations <= 5, result
        problem.accept()
        sigma = problem.stress_at_cell_midpoints()[1][:, 0, 0]
        assert np.ptp(sigma) < 1e-8 * abs(sigma).max()  # uniform
        fe.append(sigma.mean())
    ode, _ = viscoplastic_confined_swelling(
        times, lambda t: swelling_ratio(card, theta_rate * t), card.youngs_modulus.m_as("MPa"),
        card.poisson_ratio, 1000.0, 1e-3, card.host.viscoplastic_exponent)
    return np.array(fe), ode[1:]


def test_viscoplastic_confined_swelling_against_the_flow_rule() -> None:
    """The stress history converges to the ODE of (6.2) at first order in Δt; the state
    flows at about twice σ_Y here (overstress ⟨σ_e/σ_Y − 1⟩ ≈ 1)."""
    errors = []
    for steps in (40, 160):
        fe, ode = confined_swelling(steps)
        errors.append(np.abs(fe - ode).max() / 1000.0)
        assert abs(fe[-1] / ode[-1] - 1) < 0.01, (fe[-1], ode[-1])
    assert ode[-1] < -2000.0
    assert errors[1] < 0.04 and errors[0] / errors[1] > 2.5, errors


def test_viscoplastic_newton_and_elastic_threshold(tmp_path_factory) -> None:
    """Si shell in a spring: quadratic Newton with the algorithmic tangent; and below the
    card's elastic_threshold the viscoplastic problem is the elastic one."""
    cache = tmp_path_factory.mktemp("meshes")
    # a strongly rate-dependent Si (not the calibrated card): one 60 s step from the
    # elastic state then flows moderately, the regime this Newton-rate check was made for
    si = apply_overrides(CARDS["Si"], {"elastic_threshold": 0.05,
                                       "viscoplastic_rate": "1e-9 1/s"})
    domain, theta = octant("Si", cache, 0.2, 0.3, {**CARDS, "Si": si})
    bcs = [*SYMMETRY, Spring("surface", 1.0e4, RADIUS)]
    plastic = ViscoplasticMechanicsProblem(domain, theta, bcs)
    elastic = MechanicsProblem(domain, theta, bcs)
    theta.x.array[:] = 0.04  # below the threshold 0.05
    assert plastic.solve(60.0).converged and elastic.solve().converged
    plastic.accept()
    assert np.allclose(plastic.sigma_h.x.array, elastic.sigma_h.x.array, rtol=1e-10, atol=1e-8)
    assert np.all(plastic.plastic_strain.x.array == 0.0)
    for front in (1.0, 0.95):
        theta.interpolate(lambda x, f=front: 0.5 * (1 + np.tanh(
            (np.linalg.norm(x, axis=0) - f) / 0.05)))
        result = plastic.solve(60.0)
        assert result.converged, result
        plastic.accept()
    logs = np.log(result.residuals)
    order = np.diff(logs)[1:] / np.diff(logs)[:-1]
    assert len(result.residuals) <= 6 and order[-1] > 1.8, (result.residuals, order)
    assert plastic.plastic_strain.x.array.max() > 1e-3  # it flowed


def two_blocks(comm: MPI.Comm, n: int = 4) -> TaggedMesh:
    """Unit box: ideal_host below z = 1/4 and above z = 3/4, pore in between; the upper
    block touches only the lateral faces (like a particle cap cut by them)."""
    tagged = column_with_pore(comm, n, "host:ideal_host")
    upper = dmesh.locate_entities(tagged.mesh, 3, lambda x: x[2] >= 0.75 - 1e-12)
    lower = dmesh.locate_entities(tagged.mesh, 3, lambda x: x[2] <= 0.25 + 1e-12)
    values = np.full(len(tagged.cell_tags.values), PORE, dtype=np.int32)
    values[np.isin(tagged.cell_tags.indices, np.concatenate([upper, lower]))] = SOLID
    tagged.cell_tags = dmesh.meshtags(tagged.mesh, 3, tagged.cell_tags.indices, values)
    return tagged


@pytest.mark.parametrize("linear_solver", ["mumps", "gamg"])
def test_floating_pieces_rest_on_a_weak_foundation(linear_solver) -> None:
    """A piece not connected to the anchored body has free rigid-body modes (singular
    Jacobian); on the weak foundation it swells freely and the anchored block is unchanged."""
    domain = SolidDomain.from_tagged(two_blocks(MPI.COMM_WORLD), CARDS)
    labels, sizes = domain.pieces()
    assert len(sizes) == 2 and sorted(sizes.values()) == [96, 96]
    theta = fem.Function(fem.functionspace(domain.mesh, ("DG", 0)))
    theta.x.array[:] = 0.5
    problem = MechanicsProblem(domain, theta, [FixedBottom(), Roller("lateral")],
                               MechanicsSettings(kinematics="small", degree=1,
                                                 linear_solver=linear_solver))
    assert problem.solve().converged
    x, sigma = problem.stress_at_cell_midpoints()
    lower, upper = sigma[x[:, 2] < 0.5], sigma[x[:, 2] > 0.5]
    # lower block: biaxial, σ_xx = σ_yy = −E e*/(1 − ν), σ_zz = 0 (top free)
    card = CARDS["ideal_host"]
    E, nu = card.youngs_modulus.m_as("MPa"), card.poisson_ratio
    e_star = float(swelling_ratio(card, 0.5)) ** (1 / 3) - 1
    assert np.allclose(lower[:, 0, 0], -E * e_star / (1 - nu), rtol=1e-6)
    # upper block: laterally confined too (rollers), but nothing holds it vertically: it
    # slides on the rollers and takes the same biaxial stress, up to the foundation's pull
    assert np.allclose(upper[:, 0, 0], -E * e_star / (1 - nu), rtol=1e-4)
    assert np.abs(upper[:, 2, 2]).max() < 1e-4 * E * e_star
