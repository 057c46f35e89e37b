"""`PolicyVersions`: keeps every policy version the vault serves and loads a kept one
into a `PolicyEngine` (the production engine) to decide again with it."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping

import sqlalchemy as sa

from vault.clock import Clock
from vault.fields.dictionary import DataDictionary
from vault.policy import PolicyConfigError, PolicyEngine
from vault.storage import policy_versions as repo
from vault.storage.db import Database
from vault.storage.policy_versions import FieldClasses, StoredVersion
from vault.views.model import FieldDescriptor

log = logging.getLogger(__name__)

MAX_LOADED = 16
"""Engines of kept versions held in memory at once (a replay window rarely spans more)."""


def field_classes(dictionary: DataDictionary) -> FieldClasses:
    """(name, type, class) of each dictionary field: what a view plan depends on."""
    return tuple(
        (spec.name, str(spec.type), str(spec.sensitivity)) for spec in dictionary.fields.values()
    )


def descriptors(fields: FieldClasses) -> tuple[FieldDescriptor, ...]:
    """The fields as a view plan takes them."""
    return tuple(FieldDescriptor(name, kind, sensitivity) for name, kind, sensitivity in fields)


class PolicyVersions:
    """The vault's kept policy versions (table `policy_versions`)."""

    def __init__(self, db: Database, dictionary: DataDictionary, clock: Clock) -> None:
        self._db = db
        self._fields = field_classes(dictionary)
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: OrderedDict[str, tuple[PolicyEngine, tuple[FieldDescriptor, ...]]] = (
            OrderedDict()
        )

    @property
    def fields(self) -> FieldClasses:
        """The data dictionary's fields in force."""
        return self._fields

    def record(self, version: str, files: Mapping[str, str]) -> None:
        """Keep `version` and mark it served now (`PolicyEngine.on_version` calls it at
        start-up and on every reload that puts a new policy in force)."""
        try:
            with self._db.write() as conn:
                repo.record_served(conn, version, files, self._fields, self._clock.now())
        except sa.exc.IntegrityError:
            # Another process kept it first: mark it served.
            with self._db.write() as conn:
                repo.record_served(conn, version, files, self._fields, self._clock.now())

    def get(self, version: str) -> StoredVersion | None:
        """The kept version, or None."""
        with self._db.read() as conn:
            return repo.get(conn, version)

    def listing(
        self, limit: int = 100, after: tuple[int, str] | None = None
    ) -> list[StoredVersion]:
        """The kept versions, most recently served first (after a position: a page)."""
        with self._db.read() as conn:
            return repo.listing(conn, limit, after)

    def engine(self, version: str) -> tuple[PolicyEngine, tuple[FieldDescriptor, ...]] | None:
        """An engine over the kept files of `version` and the fields it served with;
        None when the version was never kept (or its files no longer load)."""
        with self._lock:
            found = self._loaded.get(version)
            if found is not None:
                self._loaded.move_to_end(version)
                return found
        stored = self.get(version)
        if stored is None:
            return None
        try:
            engine = PolicyEngine.from_texts(stored.files)
        except PolicyConfigError:
            log.warning("kept policy version %s no longer loads", version)
            return None
        loaded = (engine, descriptors(stored.fields))
        with self._lock:
            self._loaded[version] = loaded
            while len(self._loaded) > MAX_LOADED:
                self._loaded.popitem(last=False)
        return loaded
