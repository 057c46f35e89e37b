"""The data dictionary: which fields a subject may have, and how each value is checked.

- `dictionary`: `policies/data_dictionary.yaml` loaded and validated (`DataDictionary`);
- `spec`: what the dictionary says about one field (`FieldSpec`, `FieldType`);
- `normalizers`: one value validated and put in canonical form by its type.

Below every domain service: records seal what it normalizes, consent receipts name its
categories, retention keeps what its anonymization rules say.
"""
