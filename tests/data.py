"""Test data more than one test module uses: one home, so test modules never import
each other (`tests/unit/test_suite_layout.py` checks that).

Values only: the vendored test vectors' folder, the people the integration tests
store, the principals they call as, and the policy's expected view matrix.
"""

from __future__ import annotations

from pathlib import Path

from vault.views.model import FieldDescriptor

VECTORS = Path(__file__).resolve().parent / "vectors"
"""`tests/vectors/`: the test vectors the suite carries (see its README.md)."""


# --- people the integration tests store (made up; the PII watch seeds what they send) ---

ADA = {
    "given_name": "Augusta Ada",
    "family_name": "Lovelace",
    "email": " Ada.Lovelace@Example.COM ",
    "phone": "+44 20 7946 0018",
    "date_of_birth": "1985-12-10",
    "postal_code": "w1a 1aa",
    "country": "gb",
    "national_id": "QQ 12 34 56 C",
    "notes": "Prefers e-mail; analytical engine enthusiast",
}

GRACE = {
    "given_name": "Grace",
    "family_name": "Hopper",
    "email": "grace.hopper@example.org",
    "phone": "+1 212 555 0199",
    "date_of_birth": "1966-12-09",
    "postal_code": "10027",
    "country": "us",
}

# A customer whose every value is looked for where personal data must never show up.
PII = {
    "given_name": "Zebulon",
    "family_name": "Quartermaine",
    "email": "zebulon.quartermaine@example.net",
    "phone": "+1 415 555 0199",
    "date_of_birth": "1979-04-03",
    "street_address": "42 Wallaby Way",
    "city": "Sydneyville",
    "postal_code": "94107",
    "country": "US",
    "national_id": "078-05-1120",
    "loyalty_tier": "gold",
    "notes": "Allergic to kumquats",
}
SECRETS = [
    "Zebulon",
    "Quartermaine",
    "zebulon.quartermaine",
    "4155550199",
    "555 0199",
    "1979-04-03",
    "Wallaby",
    "Sydneyville",
    "078-05-1120",
    "kumquats",
    "not-an-email-zebulon",
]

# --- principals the tests call as: keyword arguments of `RunningVault.token` ----------

SERVICE = {"principal": "order-service", "roles": ("service",)}
DPO = {"principal": "dpo-1", "roles": ("dpo",), "clearance": "3"}
FRAUD = {"principal": "fraud-1", "roles": ("fraud_analyst",), "clearance": "3"}
ADMIN = {"principal": "ops-1", "roles": ("admin",)}
NOBODY = {"principal": "intern", "roles": ("no_such_role",)}

# --- the policy's view matrix (tests/unit/policy/test_matrix.py and, through the ------
# --- server, tests/integration/test_view_matrix.py) -----------------------------------

# The data dictionary's fields as far as views care: name, type, sensitivity class.
FIELDS = (
    FieldDescriptor("given_name", "name", "internal"),
    FieldDescriptor("family_name", "name", "internal"),
    FieldDescriptor("email", "email", "confidential"),
    FieldDescriptor("phone", "phone", "confidential"),
    FieldDescriptor("date_of_birth", "date", "confidential"),
    FieldDescriptor("street_address", "string", "confidential"),
    FieldDescriptor("city", "string", "internal"),
    FieldDescriptor("postal_code", "postal_code", "internal"),
    FieldDescriptor("country", "country", "public"),
    FieldDescriptor("national_id", "national_id", "restricted"),
    FieldDescriptor("loyalty_tier", "enum", "internal"),
    FieldDescriptor("notes", "free_text", "confidential"),
)

ROLES = (
    "service",
    "support_agent",
    "support_lead",
    "marketing",
    "analyst",
    "fraud_analyst",
    "compliance_officer",
    "dpo",
    "admin",
    "customer",
    "frontend",
)
VIEWS = ("support", "marketing", "analytics", "fraud", "full", "self")
PURPOSES = (
    "support",
    "marketing",
    "personalization",
    "sharing",
    "analytics",
    "fraud",
    "legal",
    "data_subject_request",
)
SUPPORT_OUTCOMES = {
    "given_name": "clear",
    "family_name": "clear",
    "email": "masked:email",
    "phone": "masked:phone_last4",
    "date_of_birth": "masked:date_year",
    "street_address": "omitted",
    "city": "clear",
    "postal_code": "masked:postal_prefix",
    "country": "clear",
    "national_id": "masked:national_id_last4",
    "loyalty_tier": "clear",
    # confidential: clear needs clearance 2; below it, free text's default mask
    "notes": "masked:redact",
}
MARKETING_OUTCOMES = {
    "given_name": "clear",
    "family_name": "masked:name_initial",
    "email": "clear",
    "phone": "omitted",
    "date_of_birth": "masked:age_band",
    "street_address": "omitted",
    "city": "clear",
    "postal_code": "generalized:postal_prefix",
    "country": "clear",
    "national_id": "omitted",
    "loyalty_tier": "clear",
    "notes": "omitted",
}
# personalization may see confidential fields masked only: the clear email gets the
# default mask of its type
PERSONALIZATION_OUTCOMES = {**MARKETING_OUTCOMES, "email": "masked:email"}
ANALYTICS_OUTCOMES = {
    "given_name": "omitted",
    "family_name": "omitted",
    "email": "pseudonymized",
    "phone": "omitted",
    "date_of_birth": "generalized:decade_band",
    "street_address": "omitted",
    "city": "clear",
    "postal_code": "generalized:postal_prefix",
    "country": "generalized:country",
    "national_id": "omitted",
    "loyalty_tier": "clear",
    "notes": "omitted",
}
FRAUD_OUTCOMES = {
    **{f.name: "clear" for f in FIELDS},
    "national_id": "tokenized",
    "notes": "masked:redact",
}
FULL_OUTCOMES = {f.name: "clear" for f in FIELDS}
SELF_OUTCOMES = {**FULL_OUTCOMES, "national_id": "masked:national_id_last4"}

# (role, view, purpose) -> outcome per field, for subjects:read with no attributes.
READ_GRANTS = {
    ("support_agent", "support", "support"): SUPPORT_OUTCOMES,
    ("support_lead", "support", "support"): SUPPORT_OUTCOMES,
    ("marketing", "marketing", "marketing"): MARKETING_OUTCOMES,
    ("marketing", "marketing", "personalization"): PERSONALIZATION_OUTCOMES,
    ("analyst", "analytics", "analytics"): ANALYTICS_OUTCOMES,
    ("fraud_analyst", "fraud", "fraud"): FRAUD_OUTCOMES,
    ("dpo", "full", "data_subject_request"): FULL_OUTCOMES,
    ("dpo", "full", "legal"): FULL_OUTCOMES,
    ("customer", "self", "data_subject_request"): SELF_OUTCOMES,
}
