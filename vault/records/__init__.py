"""Subjects as the domain sees them: writes (`service`), reads through masked views
(`reader`, `rendering`), reveal and tokens (`disclosure`), and `cipher`, the only place
records meet crypto (values to sealed rows and blind indexes, and back).

The data dictionary that normalizes values is `vault.fields`; the subject value types
are `vault.subject`; access checks are `vault.access`; erasure shreds through
`vault.storage.shredding`.
"""
