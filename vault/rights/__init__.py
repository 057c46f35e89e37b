"""Data-subject rights: access/export, rectification, restriction and erasure."""
