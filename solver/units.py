"""Units: one shared pint registry, parsing with clear errors, and the internal unit system.

Case files and material cards carry units ("50 MPa", "2 mA/cm^2", "25 degC"). They are
parsed here into pint Quantities and converted to plain floats once, at the boundary of
the physics code, in the internal unit system:

    length              um        (µm; meshes are built in µm)
    time                s
    potential           V
    temperature         K
    stress, pressure    MPa
    diffusivity         um^2/s
    current density     A/m^2
    concentration       mol/m^3
    conductivity        S/m       (the transport forms use the scaled value in
                                   A/m^2 per V/um, see ``CONDUCTIVITY_SCALED``)
    energy barrier      eV        (per Li; molar energies such as "37 kJ/mol" convert)

Physics builders call ``magnitude(q, "um^2/s")`` (or ``q.m_as(...)``) and never
convert units anywhere else.
"""

from __future__ import annotations

import math
import re

import pint

ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)  # "25 degC" works
ureg.formatter.default_format = "~P"

# Activation energies are quoted per particle (eV) or per mole (kJ/mol); allow both to
# convert into each other by Avogadro's number.
_molar = pint.Context("molar_energy")
_molar.add_transformation(
    "[energy]", "[energy]/[substance]", lambda reg, x: x * reg.avogadro_constant
)
_molar.add_transformation(
    "[energy]/[substance]", "[energy]", lambda reg, x: x / reg.avogadro_constant
)
ureg.add_context(_molar)
ureg.enable_contexts("molar_energy")

Q_ = ureg.Quantity
Quantity = pint.Quantity

F = Q_(1.0, "faraday_constant").to("C/mol")
R = Q_(1.0, "molar_gas_constant").to("J/(mol*K)")
k_B = Q_(1.0, "boltzmann_constant").to("eV/K")

# Conductivity unit of the scaled transport forms: i [A/m^2] = -kappa grad(phi) [V/um].
CONDUCTIVITY_SCALED = "A/m^2/(V/um)"

_NUMBER_FIRST = re.compile(r"\s*[-+]?(\d|\.\d)")


def _fail(field: str, expected: str, text: object, why: str) -> ValueError:
    example = "0.3" if expected == "" else f"1 {expected}"
    kind = "a number" if expected == "" else f"a quantity in units of {expected}"
    return ValueError(f"{field}: expected {kind} (e.g. '{example}'), got '{text}': {why}")


def parse_quantity(text: str | float | int | Quantity, expected: str, field: str) -> Quantity:
    """Parse ``text`` ("50 MPa") and check it has the dimension of ``expected`` ("Pa").

    A bare number is accepted only when ``expected`` is "" (dimensionless). Raises a
    ValueError naming ``field`` for a missing, unknown or wrong unit.
    """
    if isinstance(text, Quantity):
        q = text
    elif isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise _fail(field, expected, text, f"not a number or a string ({type(text).__name__})")
    elif isinstance(text, (int, float)):
        q = Q_(float(text), "")
    else:
        if not _NUMBER_FIRST.match(text):
            raise _fail(field, expected, text, "it must start with a number")
        try:
            q = Q_(text)
        except pint.UndefinedUnitError as err:
            names = err.unit_names if isinstance(err.unit_names, str) else ", ".join(err.unit_names)
            raise _fail(field, expected, text, f"unknown unit '{names}'") from None
        except Exception as err:  # pint raises several syntax error types
            raise _fail(field, expected, text, f"cannot parse ({err})") from None
    if expected != "" and q.unitless:
        raise _fail(field, expected, text, "the unit is missing")
    try:
        value = q.m_as(expected)
    except pint.DimensionalityError:
        raise _fail(field, expected, text, f"wrong dimension {q.dimensionality}") from None
    if not math.isfinite(float(value)):
        raise _fail(field, expected, text, "not a finite number")
    return q


def magnitude(q: Quantity, unit: str) -> float:
    """The magnitude of ``q`` in ``unit`` (internal units at the physics boundary)."""
    try:
        return float(q.m_as(unit))
    except pint.DimensionalityError:
        raise ValueError(f"cannot express {q} in {unit}: wrong dimension") from None
