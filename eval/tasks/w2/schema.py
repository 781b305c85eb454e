"""The W-2 extraction task: the one schema, prompt and target serialisation.

Training (``torchtune_ext.datasets.w2_dataset``) and evaluation (``python -m eval.w2``)
both import from here, so the model is scored on exactly what it was taught.

Field names are the reference recipe's (llama-cookbook ``W2Form``), misspellings
included (``box_13_statutary_employee``, ``box_13_third_part_sick_pay``), so that
scores stay comparable with its published 58 / 72 / 98 %.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict

__all__ = [
    "PROMPT",
    "W2Form",
    "FIELDS",
    "MONEY_FIELDS",
    "INT_FIELDS",
    "ID_LAYOUTS",
    "ID_NUMBER_FIELDS",
    "json_schema",
    "target_json",
]

#: The one instruction, sent after the image, in training and in evaluation.
PROMPT = "Parse this W-2 form and extract all fields into a single level json."


class W2Form(BaseModel):
    """One W-2 form, flat, as in the reference dataset's ``gt_parse``.

    Empty boxes hold the string ``"None"`` in the dataset; checkboxes hold ``"x"``.
    """

    model_config = ConfigDict(extra="forbid")

    box_b_employer_identification_number: str
    box_c_employer_name: str
    box_c_employer_street_address: str
    box_c_employer_city_state_zip: str
    box_a_employee_ssn: str
    box_e_employee_name: str
    box_e_employee_street_address: str
    box_e_employee_city_state_zip: str
    box_d_control_number: int
    box_1_wages: float
    box_2_federal_tax_withheld: float
    box_3_social_security_wages: float
    box_4_social_security_tax_withheld: float
    box_5_medicare_wages: float
    box_6_medicare_wages_tax_withheld: float
    box_7_social_security_tips: float
    box_8_allocated_tips: float
    box_9_advance_eic_payment: Optional[str]
    box_10_dependent_care_benefits: float
    box_11_nonqualified_plans: float
    box_12a_code: str
    box_12a_value: float
    box_12b_code: str
    box_12b_value: float
    box_12c_code: str
    box_12c_value: float
    box_12d_code: Optional[str]
    box_12d_value: float
    box_13_statutary_employee: Optional[str]
    box_13_retirement_plan: Optional[str]
    box_13_third_part_sick_pay: Optional[str]
    box_15_1_state: str
    box_15_1_employee_state_id: str
    box_16_1_state_wages: float
    box_17_1_state_income_tax: float
    box_18_1_local_wages: float
    box_19_1_local_income_tax: float
    box_20_1_locality: str
    box_15_2_state: str
    box_15_2_employee_state_id: str
    box_16_2_state_wages: float
    box_17_2_state_income_tax: float
    box_18_2_local_wages: float
    box_19_2_local_income_tax: float
    box_20_2_locality: str


#: Field names in schema order (the order of the canonical target JSON).
FIELDS: tuple[str, ...] = tuple(W2Form.model_fields)
#: Dollar amounts (compared to the cent after normalisation).
MONEY_FIELDS: frozenset[str] = frozenset(
    name for name, f in W2Form.model_fields.items() if f.annotation is float
)
#: Integer fields.
INT_FIELDS: frozenset[str] = frozenset(name for name, f in W2Form.model_fields.items() if f.annotation is int)
#: Identification numbers and their digit groups: SSN ``123-45-6789``, EIN ``12-3456789``.
ID_LAYOUTS: dict[str, tuple[int, ...]] = {
    "box_a_employee_ssn": (3, 2, 4),
    "box_b_employer_identification_number": (2, 7),
}
#: Identification numbers (SSN, EIN): compared on their digits when written in their layout.
ID_NUMBER_FIELDS: frozenset[str] = frozenset(ID_LAYOUTS)


def json_schema() -> dict[str, Any]:
    """JSON schema of :class:`W2Form`, as sent in ``response_format``.

    Returns:
        dict[str, Any]: the pydantic JSON schema (all fields required, no extras).
    """
    return W2Form.model_json_schema()


def target_json(record: Mapping[str, Any]) -> str:
    """Serialise one ground-truth record as the canonical answer the model learns.

    Keys in schema order, values as in the dataset (``"None"`` stays a string),
    ``json.dumps`` default separators, non-ASCII kept.

    Args:
        record (Mapping[str, Any]): a flat ground-truth mapping with every field.

    Returns:
        str: the canonical JSON string.

    Raises:
        KeyError: if a field is missing; the message names it.
    """
    missing = [k for k in FIELDS if k not in record]
    if missing:
        raise KeyError(f"ground truth lacks field(s): {', '.join(missing)}")
    return json.dumps({k: record[k] for k in FIELDS}, ensure_ascii=False)
