"""Constriction screening (MODEL §10, docs/screening.md): formulas (10.1)-(10.5) on
hand-computed cases, the card derivations, user tables, entry sets and the CLI."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from solver.materials import equilibrium_capacity_under_pressure, load_library
from solver.screening import (
    N_A,
    Entry,
    HostInput,
    ScreeningInputError,
    capacity_vs_confinement,
    confinement_for_capacity_fraction,
    critical_modulus,
    entries_from_pymatgen,
    host_from_card,
    hosts_from_entries,
    lithiation_at_zero_volts,
    load_user_materials,
    molar_mass,
    parse_formula,
    reaction_energy,
    run_screening,
    screen,
)
from solver.units import Q_, F, magnitude

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "cases" / "materials" / "user_hosts_example.yaml"
MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or "mpirun"
EV_PER_A3_IN_GPA = 160.21766  # 1 eV/Å^3 = 1.602176634e-19 J / 1e-30 m^3


@pytest.fixture(scope="module")
def lib():
    return load_library()


def synthetic(n: float, U: float, V_A3: float, eps: float, name: str = "X") -> HostInput:
    """A host given by n, U (V), V (Å^3 per formula unit) and ε."""
    V = Q_(V_A3, "angstrom^3") * N_A
    return HostInput(name=name, source="test", voltage=Q_(U, "V"), composition=n,
                     li_density=n / V, molar_volume=V, volume_strain=eps)


# --- (10.1)-(10.4) on hand-computed cases ------------------------------------------------


def test_reaction_energy_and_critical_modulus_by_hand():
    assert magnitude(reaction_energy(2.0, Q_(0.5, "V")), "J/mol") == pytest.approx(
        -96485.33212, rel=1e-9)  # G = -n F U = -1 eV per formula unit
    # K_crit = -G / (V ε) with G = -1 eV, V = 20 Å^3, ε = 1.5: 1/30 eV/Å^3
    G_per_V = Q_(-1.0, "eV") / Q_(20.0, "angstrom^3")
    assert magnitude(critical_modulus(G_per_V, 1.5), "GPa") == pytest.approx(
        EV_PER_A3_IN_GPA / 30, rel=1e-6)
    assert critical_modulus(G_per_V, 0.0).m == np.inf  # no swelling: never suppressed


def test_screen_row_by_hand():
    row = screen(synthetic(n=2.0, U=0.5, V_A3=20.0, eps=1.5))
    K = EV_PER_A3_IN_GPA / 30  # 5.3406 GPa
    assert row.alloying
    assert row.G_eV_per_fu == pytest.approx(-1.0, rel=1e-9)
    assert row.K_crit_GPa == pytest.approx(K, rel=1e-6)
    assert row.n_over_K_crit_per_GPa == pytest.approx(2.0 / K, rel=1e-6)
    assert row.U_n_over_K_crit_eV_per_GPa == pytest.approx(0.5 * 2.0 / K, rel=1e-6)
    assert row.V_cm3_per_mol == pytest.approx(20e-24 * 6.02214076e23, rel=1e-9)
    assert np.isnan(row.K_1pct_GPa)  # only a card has an OCV for (10.5)


def test_reciprocal_relation_for_a_family_with_equal_eps_V():
    """(10.4): U n / K_crit = ε V / F, whatever U and n, for equal ε V."""
    eps_V = 30.0  # Å^3 per formula unit
    family = [synthetic(n, U, V, eps_V / V, name=f"m{i}") for i, (n, U, V) in enumerate(
        [(1.0, 0.1, 10.0), (2.0, 0.5, 20.0), (3.75, 0.4, 15.0), (0.5, 1.2, 60.0),
         (4.4, 0.05, 25.0)])]
    rows = [screen(m) for m in family]
    expected = magnitude(Q_(eps_V, "angstrom^3") * N_A / F, "V/GPa")  # 0.18725 eV/GPa
    assert expected == pytest.approx(0.187245, rel=1e-5)
    for r in rows:
        assert r.U_V * r.n_over_K_crit_per_GPa == pytest.approx(expected, rel=1e-9)
    assert len({round(r.K_crit_GPa, 6) for r in rows}) == len(rows)  # K_crit differ


def test_formula_and_molar_mass():
    assert parse_formula("Mg2Si") == {"Mg": 2.0, "Si": 1.0}
    assert parse_formula("Li3.75Si") == {"Li": 3.75, "Si": 1.0}
    assert magnitude(molar_mass("Mg2Si"), "g/mol") == pytest.approx(2 * 24.305 + 28.085)
    for bad in ("graphite", "Mg(OH)2", "2Si", ""):
        with pytest.raises(ValueError, match="not a chemical formula"):
            parse_formula(bad)
    with pytest.raises(ValueError, match="no atomic weight for Xx"):
        molar_mass("Xx2")


# --- cards --------------------------------------------------------------------------------


def test_si_card_by_hand(lib):
    si = lib["Si"]
    a = [-96.63, 372.6, -587.6, 489.9, -232.8, 62.99, -9.286, 0.8633]  # θ^7 ... θ^0 (MODEL §11)
    u_mean = sum(c / (7 - k + 1) for k, c in enumerate(a))  # ∫_0^1 U_ocv dθ
    assert u_mean == pytest.approx(0.21346, abs=1e-5)
    row = screen(host_from_card(si))
    u = row.U_V
    assert u == pytest.approx(u_mean, rel=1e-9)
    assert row.n_Li_per_fu == pytest.approx(2.78e5 * 28.085e-3 / 2330, rel=1e-9)  # c_max M/ρ
    assert row.epsilon == pytest.approx(9.0e-6 * 2.78e5, rel=1e-12)  # Ω c_max
    assert row.V_cm3_per_mol == pytest.approx(28.085 / 2.330, rel=1e-9)
    # for a card K_crit = −G/(Vε) reduces to F U / Ω
    assert row.K_crit_GPa == pytest.approx(96485.33212 * u_mean / 9.0e-6 / 1e9, rel=1e-9)
    G_J_per_mol = row.G_eV_per_fu * 96485.33212
    assert row.K_crit_GPa == pytest.approx(
        -G_J_per_mol / (row.V_cm3_per_mol * 1e-6 * row.epsilon) / 1e9, rel=1e-6)
    assert row.K_zero_GPa == pytest.approx(96485.33212 * 0.8633 / 9.0e-6 / 1e9, rel=1e-9)
    assert row.capacity_mAh_per_g == pytest.approx(3197.8, abs=0.1)


def test_one_percent_confinement_inverts_the_capacity_curve(lib):
    for name in ("Si", "Ag", "Mg2Si", "graphite", "ideal_host"):
        card = lib[name]
        theta0, _ = equilibrium_capacity_under_pressure(card, "0 Pa")
        K = confinement_for_capacity_fraction(card, 0.01)
        assert equilibrium_capacity_under_pressure(card, K)[0] == pytest.approx(
            0.01 * theta0, abs=1e-9)
        assert equilibrium_capacity_under_pressure(card, 0.99 * K)[0] > 0.01 * theta0
        assert equilibrium_capacity_under_pressure(card, 1.01 * K)[0] < 0.01 * theta0
    assert magnitude(confinement_for_capacity_fraction(lib["Si"], 0.01), "GPa") == (
        pytest.approx(8.325, abs=1e-3))


def test_capacity_curve_reproduces_model_section_10(lib):
    K = np.array([0.0, 1.0, 2.0, 3.0, 5.0, 5.5])
    theta, capacity = capacity_vs_confinement(lib["Si"], K)
    assert capacity == pytest.approx([3198, 2465, 1650, 656, 211, 172], abs=1.0)
    assert np.all(np.diff(theta) < 0)


def test_library_screening(lib):
    result = run_screening(n_points=11)
    rows = {r.name: r for r in result.rows}
    assert {"Si", "Ag", "Mg2Si", "graphite", "Cu", "Ti"} <= set(rows)
    assert not {"LPSCl", "Li"} & set(rows)  # electrolytes and Li metal are not hosts
    for inert in ("Cu", "Ti"):
        r = rows[inert]
        assert not r.alloying and r.n_Li_per_fu == 0 and np.isnan(r.K_crit_GPa)
    assert rows["Mg2Si"].n_Li_per_atom == pytest.approx(rows["Mg2Si"].n_Li_per_fu / 3)
    # a card without a formula unit still has K_crit (it needs only n/V), not n or G
    ideal = rows["ideal_host"]
    assert np.isfinite(ideal.K_crit_GPa) and np.isnan(ideal.n_Li_per_fu)
    assert set(result.curves) == {"Si", "Ag", "Mg2Si", "graphite", "ideal_host"}


# --- user tables --------------------------------------------------------------------------


def test_example_table(tmp_path):
    hosts = {h.name: h for h in load_user_materials(EXAMPLE)}
    rows = {name: screen(h) for name, h in hosts.items()}
    assert rows["Ge"].n_Li_per_fu == pytest.approx(3.75, rel=2e-3)  # from 1384 mAh/g
    assert rows["Sn"].V_cm3_per_mol == pytest.approx(118.71 / 7.27, rel=1e-9)  # from density
    assert rows["Al"].epsilon == pytest.approx(9.6 / (26.982 / 2.70), rel=1e-9)  # n Ω / V
    assert rows["Si_Li15Si4"].epsilon == pytest.approx(2.8)  # "280 %"
    assert not rows["Ni"].alloying and rows["Ni"].n_Li_per_fu == 0
    # the same rows as a CSV table give the same numbers
    spec = yaml.safe_load(EXAMPLE.read_text())
    columns = ["name", *dict.fromkeys(k for v in spec.values() for k in v)]
    table = tmp_path / "hosts.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows({"name": k, **v} for k, v in spec.items())
    for h in load_user_materials(table):
        assert screen(h).K_crit_GPa == pytest.approx(rows[h.name].K_crit_GPa, nan_ok=True)
        assert h.source == "table:hosts.csv"


GOOD = {"name": "X", "formula": "Si", "voltage": "0.4 V", "composition": 3.75,
        "molar_volume": "12 cm^3/mol", "volume_change": 2.8}


@pytest.mark.parametrize("change, message", [
    ({"voltage": "0.4"}, "field 'voltage': expected a quantity in units of V .* unit is missing"),
    ({"voltage": "0 V"}, "field 'voltage': must be > 0"),
    ({"voltage": None}, "field 'voltage' .* is required"),
    ({"volume_change": -0.5}, "field 'volume_change': must be > 0"),
    ({"volume_change": None}, "give ε: exactly one of volume_change or molar_volume_li"),
    ({"capacity": "900 mAh/g"}, "exactly one of composition or capacity \\(got both\\)"),
    ({"composition": None, "capacity": "900 mAh/g", "formula": "Xx"}, "no atomic weight for Xx"),
    ({"molar_volume": None, "density": "2 g/cm^3", "formula": None}, "'density' needs the molar"),
    ({"voltag": "0.4 V"}, "unknown field\\(s\\) voltag; allowed: name, formula"),
    ({"name": ""}, "field 'name' is required"),
    ({"formula": "Si(OH)"}, "not a chemical formula"),
    ({"molar_volume": "12 cm^3"}, "field 'molar_volume': .* wrong dimension"),
])
def test_bad_table_rows_are_reported_clearly(tmp_path, change, message):
    row = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump([row]))
    with pytest.raises(ScreeningInputError, match=message):
        load_user_materials(path)


def test_every_problem_is_reported_together(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump([{**GOOD, "voltage": "0.4"}, {**GOOD, "volume_change": 0},
                                    GOOD, GOOD]))
    with pytest.raises(ScreeningInputError) as info:
        load_user_materials(path)
    text = str(info.value)
    assert "row 1" in text and "unit is missing" in text
    assert "row 2" in text and "must be > 0" in text
    assert "name 'X' appears twice" in text


def test_bad_files(tmp_path):
    with pytest.raises(ScreeningInputError, match="no such file"):
        load_user_materials(tmp_path / "missing.yaml")
    (tmp_path / "hosts.txt").write_text("x")
    with pytest.raises(ScreeningInputError, match="expected a .csv, .yaml"):
        load_user_materials(tmp_path / "hosts.txt")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ScreeningInputError, match="non-empty table"):
        load_user_materials(tmp_path / "empty.yaml")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ScreeningInputError, match="cannot be read"):
        load_user_materials(tmp_path / "broken.json")


def test_pymatgen_file_without_pymatgen(tmp_path):
    if importlib.util.find_spec("monty") is not None:
        pytest.skip("pymatgen (monty) is installed: the file would be read")
    path = tmp_path / "entries.json"
    path.write_text(json.dumps([{"@module": "pymatgen.entries.computed_entries",
                                 "@class": "ComputedEntry", "composition": {"Si": 1}}]))
    with pytest.raises(ScreeningInputError, match="needs pymatgen"):
        load_user_materials(path)


# --- entry sets: the phase equilibrium at 0 V ----------------------------------------------

MU_LI = -1.9  # eV per Li atom of the Li reference


def binary_entries() -> list[Entry]:
    """Li–Xx with formation energies per Xx of −0.6 (LiXx), −1.0 (Li2Xx), −0.9 (Li3Xx, above
    the 0 V line) and −0.7 (Li1.5Xx, above the hull): plateaus at 0.6 and 0.4 V, end Li2Xx."""
    def e(x: float, formation: float) -> float:
        return -5.0 + x * MU_LI + formation
    return [Entry("Li", MU_LI, 20.0), Entry("Li2", 2 * MU_LI + 0.1, 40.0),  # Li polymorph
            Entry("Xx", e(0, 0), 20.0), Entry("LiXx", e(1, -0.6), 35.0),
            Entry("Li2Xx", e(2, -1.0), 50.0), Entry("Li2Xx", e(2, -0.5), 55.0),  # polymorph
            Entry("Li3Xx", e(3, -0.9), 65.0), Entry("Li1.5Xx", e(1.5, -0.7), 42.0)]


def test_entries_pseudo_binary_by_hand():
    entries = binary_entries()
    n, g, products = lithiation_at_zero_volts(entries[2], entries)
    assert n == pytest.approx(2.0) and g == pytest.approx(-1.0)
    assert [(p.formula, a) for p, a in products] == [("Li2Xx", pytest.approx(1.0))]
    (host,) = hosts_from_entries(entries, ["Xx"], "entries:test")
    row = screen(host)
    u = row.U_V
    assert u == pytest.approx(0.5) and row.epsilon == pytest.approx(1.5)
    assert row.K_crit_GPa == pytest.approx(EV_PER_A3_IN_GPA / 30, rel=1e-6)  # as by hand
    assert np.isnan(row.capacity_mAh_per_g)  # Xx has no atomic weight


def multiphase_entries(li_bb_formation: float) -> list[Entry]:
    """AaBb + 3 Li -> Li2Aa + LiBb (a conversion, like Mg2Si -> Li2MgSi + Mg)."""
    return [Entry("Li", MU_LI, 20.0), Entry("Aa", -3.0, 10.0), Entry("Bb", -4.0, 12.0),
            Entry("AaBb", -7.0 - 0.2, 21.0), Entry("Li2Aa", -3.0 + 2 * MU_LI - 1.0, 30.0),
            Entry("LiBb", -4.0 + MU_LI + li_bb_formation, 22.0)]


def test_entries_multiphase_products():
    hosts = {h.name: h for h in hosts_from_entries(multiphase_entries(-0.3), None, "e")}
    assert set(hosts) == {"Aa", "Bb", "AaBb"}  # default: every Li-free composition
    row = screen(hosts["AaBb"])
    assert row.n_Li_per_fu == pytest.approx(3.0)
    assert row.G_eV_per_fu == pytest.approx(-1.1)  # (-1.0 - 0.3) - (-0.2)
    u = row.U_V
    assert u == pytest.approx(1.1 / 3)
    assert row.epsilon == pytest.approx((30.0 + 22.0) / 21.0 - 1.0)
    # LiBb above the line: Bb stays unlithiated, AaBb + 2 Li -> Li2Aa + Bb
    hosts = {h.name: h for h in hosts_from_entries(multiphase_entries(+0.1), None, "e")}
    assert not hosts["Bb"].alloying
    row = screen(hosts["AaBb"])
    assert row.n_Li_per_fu == pytest.approx(2.0) and row.G_eV_per_fu == pytest.approx(-0.8)
    assert row.epsilon == pytest.approx((30.0 + 12.0) / 21.0 - 1.0)


def test_entry_files_and_errors(tmp_path):
    spec = {"entries": [{"formula": e.formula, "energy": f"{e.energy_eV} eV",
                         "volume": f"{e.volume_A3} angstrom^3"} for e in binary_entries()],
            "hosts": ["Xx"]}
    path = tmp_path / "entries.yaml"
    path.write_text(yaml.safe_dump(spec))
    (host,) = load_user_materials(path)
    u = screen(host).U_V
    assert host.source == "entries:entries.yaml" and u == pytest.approx(0.5)
    with pytest.raises(ScreeningInputError, match="needs a Li metal entry"):
        hosts_from_entries([e for e in binary_entries() if "Xx" in e.formula], ["Xx"], "e")
    no_volume = [Entry(e.formula, e.energy_eV, None if e.formula == "Li2Xx" else e.volume_A3)
                 for e in binary_entries()]
    with pytest.raises(ScreeningInputError, match="volumes of Xx and of its lithiation"):
        hosts_from_entries(no_volume, ["Xx"], "e")
    with pytest.raises(ScreeningInputError, match="hosts not among the entries: Yy"):
        hosts_from_entries(binary_entries(), ["Yy"], "e")
    path.write_text(yaml.safe_dump({"entries": [{"formula": "Li", "energy": "-1.9"}]}))
    with pytest.raises(ScreeningInputError, match="entries\\[0\\].*unit is missing"):
        load_user_materials(path)


def test_pymatgen_like_entries_are_converted():
    """Duck-typed: .composition.items(), .energy, .structure.volume or .data['volume']."""
    objects = [SimpleNamespace(composition={"Li": 1.0}, energy=MU_LI,
                               structure=SimpleNamespace(volume=20.0)),
               SimpleNamespace(composition={"Xx": 1.0}, energy=-5.0, structure=None,
                               data={"volume": 20.0}),
               SimpleNamespace(composition={"Li": 2.0, "Xx": 1.0}, energy=-5.0 + 2 * MU_LI - 1.0,
                               structure=SimpleNamespace(volume=50.0))]
    entries = entries_from_pymatgen(objects)
    assert [e.formula for e in entries] == ["Li", "Xx", "Li2Xx"]
    (host,) = hosts_from_entries(entries, None, "pymatgen")
    assert screen(host).K_crit_GPa == pytest.approx(EV_PER_A3_IN_GPA / 30, rel=1e-6)


def test_equilibrium_matches_pymatgen_phase_diagram():
    """Our linear program against pymatgen's convex hull (skipped without pymatgen)."""
    pytest.importorskip("pymatgen")
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    # the multiphase set with real element symbols (Mg for Aa, Si for Bb)
    ours = [Entry(e.formula.replace("Aa", "Mg").replace("Bb", "Si"), e.energy_eV, e.volume_A3)
            for e in multiphase_entries(-0.3)]
    diagram = PhaseDiagram([PDEntry(Composition(e.formula), e.energy_eV) for e in ours])
    excess = 50.0  # host + excess Li decomposes into the 0 V products + Li metal
    mixture = Composition({"Mg": 1.0, "Si": 1.0, "Li": excess})
    hull_total = diagram.get_hull_energy_per_atom(mixture) * mixture.num_atoms
    n, g, _ = lithiation_at_zero_volts(ours[3], ours)
    assert g == pytest.approx(hull_total - excess * MU_LI - ours[3].energy_eV, abs=1e-8)
    li_in_products = sum(
        amount * mixture.num_atoms * entry.composition.get_atomic_fraction("Li")
        for entry, amount in diagram.get_decomposition(mixture).items()
        if entry.composition.reduced_formula != "Li")
    assert n == pytest.approx(li_in_products, abs=1e-8)


def test_pymatgen_entry_file(tmp_path):
    """A JSON list of pymatgen ComputedEntry objects (skipped without pymatgen)."""
    pytest.importorskip("pymatgen")
    from monty.serialization import dumpfn
    from pymatgen.entries.computed_entries import ComputedEntry

    entries = [ComputedEntry(e.formula.replace("Aa", "Mg").replace("Bb", "Si"), e.energy_eV,
                             data={"volume": e.volume_A3}) for e in multiphase_entries(-0.3)]
    dumpfn(entries, tmp_path / "entries.json")
    hosts = {h.name: screen(h) for h in load_user_materials(tmp_path / "entries.json")}
    row = hosts["MgSi"]
    assert row.n_Li_per_fu == pytest.approx(3.0) and row.G_eV_per_fu == pytest.approx(-1.1)
    assert row.source == "entries:entries.json"


# --- command line -------------------------------------------------------------------------


def constrict(*args: str, cwd: Path, ranks: int = 1) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "solver", *args]
    if ranks > 1:
        command = [MPIRUN, "-n", str(ranks), *command]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300,
                          env=dict(os.environ, MPLBACKEND="Agg"))


def test_cli_screen_writes_tables_and_maps(tmp_path):
    result = constrict("screen", "--materials", str(EXAMPLE), "-o", "out", cwd=tmp_path,
                       ranks=2)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / "out"
    assert sorted(p.name for p in folder.iterdir()) == [
        "capacity_vs_confinement.csv", "capacity_vs_confinement.png", "screening.csv",
        "screening.png"]
    with (folder / "screening.csv").open() as handle:
        rows = {r["name"]: r for r in csv.DictReader(handle)}
    assert float(rows["Si"]["K_crit_GPa"]) == pytest.approx(2.2884, abs=1e-4)
    assert rows["Cu"]["alloying"] == "false" and rows["Cu"]["K_crit_GPa"] == ""
    assert rows["Ge"]["source"] == "table:user_hosts_example.yaml"
    # an existing folder is not replaced without --overwrite
    again = constrict("screen", "-o", "out", cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert constrict("screen", "-o", "out", "--overwrite", cwd=tmp_path).returncode == 0


def test_cli_screen_bad_input_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump([{**GOOD, "voltage": "0.4"}]))
    result = constrict("screen", "--materials", str(bad), "-o", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert "error:" in result.stderr and "unit is missing" in result.stderr
    assert not (tmp_path / "out").exists()
