"""Plausible, internally consistent W-2 values for the synthetic generator.

:func:`sample_w2` draws one form: names and addresses with matching state codes and ZIPs,
EIN/SSN in their formats, wages with the payroll arithmetic of a real W-2 (social security
tax is 6.2 % of social security wages and tips capped at the year's wage base, Medicare tax
1.45 % plus 0.9 % above $200,000, elective deferrals leave box 1 but not boxes 3 and 5),
box 12 codes from the IRS list, box 13 checkboxes that agree with box 12, and state/local
rows for the work and home states. The record uses the reference dataset's conventions:
keys in :data:`eval.tasks.w2.FIELDS` order, an empty text box is the string ``"None"``, an
empty amount is ``0.0`` (the schema types amounts as floats), checkboxes are ``"x"`` or
``"None"``, the control number an int.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from eval.tasks.w2 import FIELDS

__all__ = [
    "CITIES",
    "BOX12_CODES",
    "RETIREMENT_CODES",
    "SS_WAGE_BASE",
    "NO_INCOME_TAX_STATES",
    "W2Sample",
    "City",
    "STATE_ROW_BOXES",
    "box_field",
    "state_field",
    "sample_w2",
    "medicare_tax",
    "social_security_tax",
]

NONE = "None"

#: Keys of a state/local row, as accepted by :func:`state_field`.
STATE_ROW_BOXES: tuple[str, ...] = ("15_state", "15_id", "16", "17", "18", "19", "20")


@cache
def box_field(box: str, part: str = "") -> str:
    """The schema key of an IRS box, looked up in ``FIELDS`` (never spelled out here).

    Args:
        box (str): the box id as printed on the form, e.g. ``"b"``, ``"1"``, ``"12a"``.
        part (str): a substring that picks one key when a box has several
            (``"name"``/``"street"``/``"zip"`` for boxes c and e, ``"code"``/``"value"`` for box 12).

    Returns:
        str: the one matching key.

    Raises:
        KeyError: if no key or more than one key matches.
    """
    hits = [k for k in FIELDS if k.startswith(f"box_{box}_") and part in k]
    if len(hits) != 1:
        raise KeyError(f"box {box!r} part {part!r} matches {len(hits)} schema keys: {hits}")
    return hits[0]


@cache
def state_field(box: str, row: int) -> str:
    """The schema key of a box of state/local row ``row`` (1 or 2).

    Args:
        box (str): one of :data:`STATE_ROW_BOXES`.
        row (int): 1 or 2.

    Returns:
        str: the matching key.

    Raises:
        KeyError: if the box is unknown or the lookup is ambiguous.
    """
    number, _, part = box.partition("_")
    part = {"state": "_state", "id": "_id"}.get(part, "")
    hits = [k for k in FIELDS if k.startswith(f"box_{number}_{row}_") and (not part or k.endswith(part))]
    if len(hits) != 1:
        raise KeyError(f"state box {box!r} row {row} matches {len(hits)} schema keys: {hits}")
    return hits[0]


@dataclass(frozen=True)
class City:
    """A US city with a ZIP range inside its state's ZIP prefixes.

    Attributes:
        name (str): city name.
        state (str): USPS state code.
        zip_lo (int): lowest ZIP code used for this city.
        zip_hi (int): highest ZIP code used for this city.
        locality (str | None): name printed in box 20 when the city levies a wage tax.
        local_rate (float): that wage tax rate (0 when none).
    """

    name: str
    state: str
    zip_lo: int
    zip_hi: int
    locality: str | None = None
    local_rate: float = 0.0


CITIES: tuple[City, ...] = (
    # Cities with a local wage tax (box 18-20 filled).
    City("New York", "NY", 10001, 10282, "NYC", 0.0364),
    City("Yonkers", "NY", 10701, 10710, "YONKERS", 0.0161),
    City("Philadelphia", "PA", 19102, 19154, "PHILA", 0.0375),
    City("Pittsburgh", "PA", 15201, 15237, "PITTSBURGH", 0.03),
    City("Scranton", "PA", 18503, 18510, "SCRANTON", 0.034),
    City("Detroit", "MI", 48201, 48239, "DETROIT", 0.024),
    City("Grand Rapids", "MI", 49503, 49548, "GRAND RAPIDS", 0.015),
    City("Columbus", "OH", 43201, 43235, "COLUMBUS", 0.025),
    City("Cleveland", "OH", 44101, 44135, "CLEVELAND", 0.025),
    City("Cincinnati", "OH", 45202, 45239, "CINCINNATI", 0.018),
    City("Toledo", "OH", 43604, 43623, "TOLEDO", 0.025),
    City("Kansas City", "MO", 64101, 64158, "KANSAS CITY", 0.01),
    City("St. Louis", "MO", 63101, 63147, "ST LOUIS", 0.01),
    City("Louisville", "KY", 40202, 40299, "LOUISVILLE", 0.022),
    City("Lexington", "KY", 40502, 40517, "LEXINGTON", 0.0225),
    City("Baltimore", "MD", 21201, 21239, "BALTIMORE", 0.032),
    City("Wilmington", "DE", 19801, 19810, "WILMINGTON", 0.0125),
    City("Birmingham", "AL", 35203, 35244, "BIRMINGHAM", 0.01),
    City("Indianapolis", "IN", 46201, 46260, "MARION", 0.0202),
    City("Portland", "OR", 97201, 97239, "PORTLAND METRO", 0.01),
    # Cities without one.
    City("Los Angeles", "CA", 90001, 90089),
    City("San Diego", "CA", 92101, 92154),
    City("San Francisco", "CA", 94102, 94134),
    City("Sacramento", "CA", 95811, 95838),
    City("Chicago", "IL", 60601, 60661),
    City("Springfield", "IL", 62701, 62712),
    City("Boston", "MA", 2108, 2137),
    City("Worcester", "MA", 1601, 1610),
    City("Atlanta", "GA", 30303, 30350),
    City("Savannah", "GA", 31401, 31419),
    City("Charlotte", "NC", 28202, 28277),
    City("Raleigh", "NC", 27601, 27617),
    City("Richmond", "VA", 23219, 23236),
    City("Arlington", "VA", 22201, 22209),
    City("Phoenix", "AZ", 85003, 85054),
    City("Tucson", "AZ", 85701, 85750),
    City("Denver", "CO", 80202, 80239),
    City("Minneapolis", "MN", 55401, 55419),
    City("Saint Paul", "MN", 55101, 55119),
    City("Milwaukee", "WI", 53202, 53233),
    City("Madison", "WI", 53703, 53719),
    City("Salt Lake City", "UT", 84101, 84121),
    City("Albuquerque", "NM", 87102, 87123),
    City("Omaha", "NE", 68102, 68164),
    City("Des Moines", "IA", 50309, 50322),
    City("Little Rock", "AR", 72201, 72227),
    City("New Orleans", "LA", 70112, 70131),
    City("Oklahoma City", "OK", 73102, 73170),
    City("Hartford", "CT", 6103, 6120),
    City("Providence", "RI", 2903, 2909),
    City("Boise", "ID", 83702, 83716),
    City("Honolulu", "HI", 96813, 96826),
    City("Portland", "ME", 4101, 4112),
    City("Burlington", "VT", 5401, 5408),
    City("Columbia", "SC", 29201, 29229),
    City("Jackson", "MS", 39201, 39216),
    City("Wichita", "KS", 67202, 67235),
    City("Helena", "MT", 59601, 59604),
    City("Fargo", "ND", 58102, 58104),
    City("Trenton", "NJ", 8608, 8690),
    City("Newark", "NJ", 7102, 7114),
    City("Buffalo", "NY", 14201, 14227),
    City("Albany", "NY", 12202, 12211),
    City("Washington", "DC", 20001, 20020),
    City("Annapolis", "MD", 21401, 21409),
    City("Charleston", "WV", 25301, 25314),
    City("Eugene", "OR", 97401, 97408),
    City("Ann Arbor", "MI", 48103, 48109),
    City("Pittsfield", "MA", 1201, 1203),
    # States without a wage income tax: no state row for work there.
    City("Nashville", "TN", 37201, 37221),
    City("Houston", "TX", 77002, 77099),
    City("Dallas", "TX", 75201, 75254),
    City("Austin", "TX", 78701, 78759),
    City("Miami", "FL", 33125, 33199),
    City("Orlando", "FL", 32801, 32839),
    City("Seattle", "WA", 98101, 98199),
    City("Las Vegas", "NV", 89101, 89149),
    City("Anchorage", "AK", 99501, 99524),
    City("Sioux Falls", "SD", 57103, 57110),
    City("Cheyenne", "WY", 82001, 82009),
    City("Manchester", "NH", 3101, 3111),
)

#: States that do not tax wages (no box 15-17 row for them).
NO_INCOME_TAX_STATES: frozenset[str] = frozenset({"AK", "FL", "NV", "NH", "SD", "TN", "TX", "WA", "WY"})

#: Flat (or typical effective) state rates; other states draw a rate per form.
_STATE_RATES: dict[str, float] = {
    "IL": 0.0495, "PA": 0.0307, "MI": 0.0425, "IN": 0.0315, "CO": 0.044, "UT": 0.0465,
    "MA": 0.05, "NC": 0.0475, "AZ": 0.025, "KY": 0.04, "ID": 0.058,
}  # fmt: skip

#: Patterns of employer state ID numbers (``#`` is a digit).
_STATE_ID_PATTERNS: dict[str, str] = {
    "CA": "###-####-#", "NY": "##-#######", "PA": "########", "IL": "####-####", "OH": "########",
    "MI": "##-#######", "MA": "###-###-###", "NJ": "###-###-###/###", "GA": "#######-AB",
    "VA": "##-#########F-###", "MN": "#######", "WI": "036-##########", "MO": "########",
}  # fmt: skip

#: Social security wage base by tax year.
SS_WAGE_BASE: dict[int, float] = {
    2019: 132900.0, 2020: 137700.0, 2021: 142800.0, 2022: 147000.0, 2023: 160200.0, 2024: 168600.0,
}  # fmt: skip
#: Elective deferral limit (401(k)/403(b)/457(b)) by tax year.
_DEFERRAL_LIMIT: dict[int, float] = {
    2019: 19000.0, 2020: 19500.0, 2021: 19500.0, 2022: 20500.0, 2023: 22500.0, 2024: 23000.0,
}  # fmt: skip

#: Every code of the IRS box 12 list (General Instructions for Forms W-2 and W-3).
BOX12_CODES: tuple[str, ...] = (
    "A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "Q", "R", "S", "T", "V",
    "W", "Y", "Z", "AA", "BB", "DD", "EE", "FF", "GG", "HH", "II",
)  # fmt: skip
#: Codes that mean the employee was an active participant in a retirement plan (box 13).
RETIREMENT_CODES: frozenset[str] = frozenset({"D", "E", "F", "G", "H", "S", "AA", "BB", "EE"})
#: Pre-tax elective deferrals: excluded from box 1, included in boxes 3 and 5.
_PRETAX_DEFERRALS: frozenset[str] = frozenset({"D", "E", "F", "G", "H", "S"})

_FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra", "Donald", "Ashley",
    "Steven", "Emily", "Andrew", "Kimberly", "Kenneth", "Donna", "Joshua", "Michelle", "Kevin", "Carol",
    "Brian", "Amanda", "Wei", "Priya", "Luis", "Maria", "Hiroshi", "Aisha", "Omar", "Fatima",
    "Dmitri", "Olga", "Kwame", "Ngozi", "Tran", "Mei", "Rahul", "Sofia", "Diego", "Hannah",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez",
    "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen",
    "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell",
    "Carter", "Roberts", "Patel", "Kim", "Chen", "Okafor", "Ivanov", "Kowalski", "O'Brien", "Schmidt",
)  # fmt: skip
_SUFFIXES = ("Jr", "Sr", "II", "III")
_STREET_NAMES = (
    "Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Walnut",
    "Sunset", "Lincoln", "Jackson", "Church", "Highland", "Ridge", "Meadow", "River", "Chestnut",
    "Franklin", "Madison", "Spring", "Center", "Forest", "Willow", "Jefferson", "Mill", "Broad", "Union",
)  # fmt: skip
_STREET_TYPES = ("St", "Ave", "Blvd", "Rd", "Dr", "Ln", "Way", "Ct", "Pl", "Pkwy")
_COMPANY_WORDS = (
    "Acme", "Summit", "Pioneer", "Blue Ridge", "Evergreen", "Northwind", "Keystone", "Liberty",
    "Harbor", "Atlas", "Cascade", "Redwood", "Silverline", "Granite", "Horizon", "Beacon", "Crescent",
    "Meridian", "Prairie", "Sterling", "Apex", "Bright Path", "Coastal", "Great Lakes", "Ironwood",
)  # fmt: skip
_COMPANY_KINDS = (
    "Logistics", "Health Systems", "Manufacturing", "Software", "Foods", "Builders", "Consulting",
    "Dental Group", "Energy", "Retail", "Insurance", "Legal Services", "Engineering", "Hospitality",
    "Auto Parts", "Financial", "Media", "Pharmacy", "Transport", "Labs",
)  # fmt: skip
_COMPANY_SUFFIXES = ("Inc", "Inc.", "LLC", "Corp", "Corporation", "Co.", "LLP", "Group", "")
#: IRS campus EIN prefixes.
_EIN_PREFIXES = tuple(
    list(range(1, 7)) + list(range(10, 17)) + list(range(20, 28)) + list(range(30, 49))
    + list(range(50, 69)) + list(range(71, 78)) + list(range(80, 89)) + list(range(90, 96)) + [98, 99]
)  # fmt: skip


@dataclass
class W2Sample:
    """One synthetic W-2: its ground truth and what is printed but not extracted.

    Attributes:
        record (dict[str, Any]): the flat ground truth, keys in ``FIELDS`` order.
        tax_year (int): the form's year (sets the wage base and the printed title).
        box14 (list[tuple[str, float]]): box 14 "Other" entries (printed, not in the schema).
        style (dict[str, Any]): printing choices (amount format) for the renderer.
    """

    record: dict[str, Any]
    tax_year: int
    box14: list[tuple[str, float]] = field(default_factory=list)
    style: dict[str, Any] = field(default_factory=dict)


def social_security_tax(ss_wages: float, ss_tips: float) -> float:
    """Box 4: 6.2 % of social security wages plus tips, to the cent.

    Args:
        ss_wages (float): box 3.
        ss_tips (float): box 7.

    Returns:
        float: box 4.
    """
    return round(0.062 * (ss_wages + ss_tips), 2)


def medicare_tax(medicare_wages: float) -> float:
    """Box 6: 1.45 % of Medicare wages plus the 0.9 % additional tax above $200,000.

    Args:
        medicare_wages (float): box 5.

    Returns:
        float: box 6.
    """
    return round(0.0145 * medicare_wages + 0.009 * max(0.0, medicare_wages - 200000.0), 2)


def _money(x: float) -> float:
    return round(float(x), 2)


def _digits(rng: np.random.Generator, pattern: str) -> str:
    return "".join(str(int(rng.integers(10))) if ch == "#" else ch for ch in pattern)


def _pick(rng: np.random.Generator, seq: tuple[Any, ...] | list[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _street(rng: np.random.Generator) -> str:
    street = f"{int(rng.integers(1, 9900))} {_pick(rng, _STREET_NAMES)} {_pick(rng, _STREET_TYPES)}"
    u = rng.random()
    if u < 0.12:
        street += f" Apt {int(rng.integers(1, 40))}{_pick(rng, 'ABCD')}"
    elif u < 0.2:
        street += f" Suite {int(rng.integers(1, 30)) * 10}"
    return street


def _city_state_zip(rng: np.random.Generator, city: City) -> str:
    zip_code = f"{int(rng.integers(city.zip_lo, city.zip_hi + 1)):05d}"
    if rng.random() < 0.2:
        zip_code += f"-{int(rng.integers(1, 10000)):04d}"
    return f"{city.name}, {city.state} {zip_code}"


def _ssn(rng: np.random.Generator) -> str:
    area = int(rng.integers(1, 900))
    while area == 666:
        area = int(rng.integers(1, 900))
    return f"{area:03d}-{int(rng.integers(1, 100)):02d}-{int(rng.integers(1, 10000)):04d}"


def _ein(rng: np.random.Generator) -> str:
    return f"{_pick(rng, _EIN_PREFIXES):02d}-{int(rng.integers(0, 10_000_000)):07d}"


def _company(rng: np.random.Generator) -> str:
    name = f"{_pick(rng, _COMPANY_WORDS)} {_pick(rng, _COMPANY_KINDS)}"
    suffix = _pick(rng, _COMPANY_SUFFIXES)
    return f"{name} {suffix}".strip()


def _person(rng: np.random.Generator) -> str:
    name = _pick(rng, _FIRST_NAMES)
    if rng.random() < 0.6:
        name += f" {chr(ord('A') + int(rng.integers(26)))}"
    name += f" {_pick(rng, _LAST_NAMES)}"
    if rng.random() < 0.04:
        name += f" {_pick(rng, _SUFFIXES)}"
    return name


def _box12(rng: np.random.Generator, year: int, salary: float) -> list[tuple[str, float]]:
    """Draw up to four box 12 entries (distinct codes, at most one elective deferral)."""
    n = int(rng.choice(5, p=[0.2, 0.3, 0.25, 0.15, 0.1]))
    entries: dict[str, float] = {}
    limit = _DEFERRAL_LIMIT[year]
    if n and rng.random() < 0.75:  # most box-12 filers have a retirement deferral
        code = str(rng.choice(["D", "E", "G", "S", "AA", "F"], p=[0.6, 0.15, 0.08, 0.05, 0.1, 0.02]))
        cap = 16000.0 if code == "S" else limit
        entries[code] = _money(min(cap, salary * rng.uniform(0.02, 0.15)))
    # Other codes and their usual amounts; rare ones keep small weights.
    others: list[tuple[str, float, tuple[float, float]]] = [
        ("DD", 5.0, (1500.0, 25000.0)), ("W", 2.0, (300.0, 4150.0)), ("C", 1.5, (20.0, 900.0)),
        ("J", 0.6, (100.0, 5000.0)), ("BB", 0.4, (500.0, 8000.0)), ("EE", 0.2, (500.0, 6000.0)),
        ("T", 0.2, (1000.0, 15000.0)), ("V", 0.2, (1000.0, 40000.0)), ("L", 0.3, (50.0, 3000.0)),
        ("P", 0.1, (200.0, 6000.0)), ("Q", 0.1, (1000.0, 20000.0)), ("R", 0.1, (100.0, 3000.0)),
        ("Y", 0.1, (500.0, 20000.0)), ("Z", 0.05, (500.0, 20000.0)), ("FF", 0.1, (500.0, 5000.0)),
        ("GG", 0.05, (500.0, 10000.0)), ("HH", 0.05, (500.0, 10000.0)), ("II", 0.05, (500.0, 10000.0)),
        ("A", 0.05, (10.0, 300.0)), ("B", 0.05, (5.0, 100.0)), ("M", 0.05, (5.0, 100.0)),
        ("N", 0.05, (2.0, 30.0)), ("K", 0.02, (1000.0, 20000.0)), ("H", 0.02, (500.0, 5000.0)),
    ]  # fmt: skip
    weights = np.array([w for _, w, _ in others])
    while len(entries) < n:
        code, _, (lo, hi) = others[int(rng.choice(len(others), p=weights / weights.sum()))]
        if code in entries or (code in RETIREMENT_CODES and entries.keys() & RETIREMENT_CODES):
            continue
        entries[code] = _money(rng.uniform(lo, hi))
    items = list(entries.items())
    order = rng.permutation(len(items))
    return [items[i] for i in order]


def sample_w2(rng: np.random.Generator) -> W2Sample:
    """Draw one plausible, internally consistent W-2.

    Args:
        rng (np.random.Generator): the only source of randomness (seed it per form for
            reproducibility independent of worker count).

    Returns:
        W2Sample: the record (``FIELDS`` order, dataset conventions) and rendering extras.
    """
    year = int(rng.integers(2019, 2025))
    work_city: City = _pick(rng, CITIES)
    if rng.random() < 0.75:
        same_state = [c for c in CITIES if c.state == work_city.state]
        home_city: City = _pick(rng, same_state)
    else:
        home_city = _pick(rng, CITIES)

    # Pay: log-uniform salary, occasional tips.
    salary = _money(np.exp(rng.uniform(np.log(16000.0), np.log(320000.0))))
    if rng.random() < 0.4:
        salary = float(round(salary))
    tips = _money(rng.uniform(800.0, 22000.0)) if rng.random() < 0.1 else 0.0
    allocated_tips = _money(rng.uniform(100.0, 3000.0)) if tips and rng.random() < 0.3 else 0.0
    box12 = _box12(rng, year, salary)
    codes = dict(box12)
    sec125 = _money(rng.uniform(300.0, 6500.0)) if rng.random() < 0.5 else 0.0
    hsa = codes.get("W", 0.0)
    imputed = codes.get("C", 0.0) + codes.get("V", 0.0)  # taxable fringe included in 1, 3, 5
    deferrals = sum(v for c, v in codes.items() if c in _PRETAX_DEFERRALS)

    wage_base = SS_WAGE_BASE[year]
    tips = min(tips, wage_base)
    medicare_wages = _money(max(0.0, salary + tips + imputed - sec125 - hsa))
    wages = _money(max(0.0, medicare_wages - deferrals))
    ss_wages = _money(min(medicare_wages - tips, wage_base - tips))
    statutory = rng.random() < 0.02
    fed_rate = float(np.clip(0.04 + 0.16 * wages / 150000.0 + rng.normal(0, 0.02), 0.0, 0.32))
    if statutory:  # statutory employees usually have no federal income tax withheld
        fed_rate = 0.0
    federal = _money(wages * fed_rate)
    nonqualified = _money(rng.uniform(1000.0, 50000.0)) if rng.random() < 0.03 else 0.0
    dependent_care = _money(rng.uniform(500.0, 5000.0)) if rng.random() < 0.08 else 0.0
    retirement = bool(codes.keys() & RETIREMENT_CODES) or rng.random() < 0.05
    sick_pay = rng.random() < 0.03

    # State rows: the work state, then the home state when it differs (resident return).
    rows: list[tuple[City, float]] = []
    for city in (work_city, home_city):
        if city.state in NO_INCOME_TAX_STATES or any(c.state == city.state for c, _ in rows):
            continue
        # Pennsylvania and New Jersey tax 401(k) deferrals: their state wages include them.
        state_wages = _money(wages + deferrals) if city.state in {"PA", "NJ"} else wages
        rows.append((city, state_wages))

    rec: dict[str, Any] = {
        box_field("b"): _ein(rng),
        box_field("c", "name"): _company(rng),
        box_field("c", "street"): _street(rng),
        box_field("c", "zip"): _city_state_zip(rng, work_city),
        box_field("a"): _ssn(rng),
        box_field("e", "name"): _person(rng),
        box_field("e", "street"): _street(rng),
        box_field("e", "zip"): _city_state_zip(rng, home_city),
        box_field("d"): int(rng.integers(10_000, 100_000_000)),
        box_field("1"): wages,
        box_field("2"): federal,
        box_field("3"): ss_wages,
        box_field("4"): social_security_tax(ss_wages, tips),
        box_field("5"): medicare_wages,
        box_field("6"): medicare_tax(medicare_wages),
        box_field("7"): tips,
        box_field("8"): allocated_tips,
        box_field("9"): NONE,  # box 9 is blank on every W-2 since 2011
        box_field("10"): dependent_care,
        box_field("11"): nonqualified,
    }
    for slot in "abcd":
        code, value = box12.pop(0) if box12 else (NONE, 0.0)
        rec[box_field(f"12{slot}", "code")] = code
        rec[box_field(f"12{slot}", "value")] = value
    rec[box_field("13", "statut")] = "x" if statutory else NONE
    rec[box_field("13", "retirement")] = "x" if retirement else NONE
    rec[box_field("13", "sick")] = "x" if sick_pay else NONE
    for k in (1, 2):
        city, state_wages = rows[k - 1] if len(rows) >= k else (None, 0.0)
        row = dict.fromkeys(STATE_ROW_BOXES, NONE) | dict.fromkeys(("16", "17", "18", "19"), 0.0)
        if city is not None:
            rate = _STATE_RATES.get(city.state, float(rng.uniform(0.02, 0.065)))
            local_wages = medicare_wages if city.locality else 0.0
            row = {
                "15_state": city.state,
                "15_id": _digits(rng, _STATE_ID_PATTERNS.get(city.state, "#########")),
                "16": state_wages,
                "17": _money(state_wages * rate),
                "18": local_wages,
                "19": _money(local_wages * city.local_rate),
                "20": city.locality or NONE,
            }
        for box, value in row.items():
            rec[state_field(box, k)] = value

    box14: list[tuple[str, float]] = []
    if work_city.state == "CA" and rng.random() < 0.8:
        box14.append(("CASDI", _money(min(wages, 153164.0) * 0.009)))
    if work_city.state == "NJ":
        box14.append(("NJ SUI/SDI", _money(min(wages, 41100.0) * 0.0047)))
    if sec125 and rng.random() < 0.4:
        box14.append(("125", sec125))
    if rng.random() < 0.1:
        box14.append(("UNION DUES", _money(rng.uniform(120.0, 1500.0))))

    style = {
        "upper": bool(rng.random() < 0.35),
        "commas": bool(rng.random() < 0.3),
        "dollar": bool(rng.random() < 0.1),
    }
    if style["upper"]:
        for key in FIELDS:
            if key.startswith(("box_c_", "box_e_")):
                rec[key] = rec[key].upper()
    record = {k: rec[k] for k in FIELDS}
    return W2Sample(record=record, tax_year=year, box14=box14, style=style)
