"""The index half of the verifier's hot loop: each entry's stored copies - its query
columns and subject links - checked against its hashed bytes, a chunk at a time.

The copies are kept for indexed look-ups; one edited alone would hide an entry from
`query` or `subject_history` without touching the tree. The fast check compares, per
leaf, fragments of canonical JSON that the database builds from the columns with the
bytes where they belong, and cuts out the bytes of the leaf's subject list. The subject
links of a whole chunk are read in one range scan (a subquery per leaf cost more than
the rest of the check) and compared with those lists link by link, as two strings of
subjects and two of entry ids. Whatever the fast check does not confirm goes to the
slow, exact check (`AuditEntry.from_canonical`), one entry at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Any, Protocol

from audit.append import query_columns
from audit.entry import AuditEntry, format_time
from audit.errors import InvalidEntryError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The indexed values as they must appear in the canonical JSON, built by the database
# (a SQL string expression per fragment). Keys are sorted and no JSON string can hold a
# bare `,"`: so the first `,"decision":` and the last `,"purpose":` / `,"result_code":`
# are the top-level keys (`extra`, the only object, lies between them and may reuse
# those names), and the entry model keeps every value below free of escapes. The subject
# list lies between the last two fragments; subject ids hold no `]`.
FRAGMENTS = (
    """'{"action":"' || audit_entries.action || '","actor":"' || audit_entries.actor"""
    """ || '","actor_roles":['""",
    """',"decision":"' || audit_entries.decision || '","extra":{'""",
    """',"purpose":"' || audit_entries.purpose || '","reason":"'""",
    """',"result_code":"' || audit_entries.result_code || '","subject_ids":['""",
    """'],"tenant":"' || audit_entries.tenant || '","time":"'""",
)
_DECISION_AT = b',"decision":"'
_PURPOSE_AT = b',"purpose":"'
_RESULT_CODE_AT = b',"result_code":"'

# The links of the entries with ids in [first, last], in (entry id, insertion) order: their
# entry ids joined by `,` and their subject ids by `","`, and how many there are.
CHUNK_LINKS = {
    "sqlite": (
        """SELECT group_concat(entry_id), CAST(group_concat(subject_id, '","') AS BLOB),"""
        """ count(*) FROM (SELECT entry_id, subject_id FROM audit_entry_subjects"""
        """ WHERE entry_id BETWEEN :first AND :last ORDER BY entry_id, rowid)"""
    ),
    "postgresql": (
        """SELECT string_agg(entry_id::text, ',' ORDER BY entry_id, ctid),"""
        """ convert_to(string_agg(subject_id, '","' ORDER BY entry_id, ctid), 'UTF8'),"""
        """ count(*) FROM audit_entry_subjects WHERE entry_id BETWEEN :first AND :last"""
    ),
}
# Reading the links of an id range pays off while the chunk's ids are about that dense.
_ID_SPREAD = 2


class IndexSource(Protocol):
    """Where the index check reads what the leaf rows do not carry (`LeafReader`)."""

    def index(self, entry_id: int) -> tuple[Sequence[Any], list[str]]:
        """One entry's query columns (in `ROW_COLUMNS` order) and linked subjects."""
        ...

    def chunk_links(self, first: int, last: int) -> tuple[str | None, bytes | None, int]:
        """The links of entries `first`..`last` as `CHUNK_LINKS` reads them."""
        ...

    def leaf_links(self, low: int, high: int) -> list[tuple[int, str]]:
        """(entry id, subject id) of every link of leaves [low, high)."""
        ...


def first_index_problem(rows: Sequence[Any], source: IndexSource) -> tuple[str, int] | None:
    """The first leaf of `rows` whose columns or links disagree with its bytes.

    A row is (leaf index, entry, leaf hash, the five fragments, time_us, id, ..., mac).
    """
    if not rows:
        return None
    times = _TimeFormatter().of_all([row[8] for row in rows])
    # The hot loop: each fragment checked where it belongs (the time, formatted here,
    # follows the last one), and the leaf's subject list cut out; None if any differs.
    lists = [
        blob[start:end]
        if (blob := row[1]).startswith(row[3])
        and blob.startswith(row[4], blob.find(_DECISION_AT))
        and blob.startswith(row[5], blob.rfind(_PURPOSE_AT))
        and blob.startswith(row[6], at := blob.rfind(_RESULT_CODE_AT))
        and blob.startswith(row[7] + time, end := blob.find(b"]", start := at + len(row[6])))
        else None
        for row, time in zip(rows, times, strict=True)
    ]
    if None not in lists and _links_match([row[9] for row in rows], lists, source):
        return None
    for row in _suspects(rows, lists, source):
        problem = _index_problem(row[1], *source.index(row[9]))
        if problem is not None:
            return problem, row[0]
    return None


def _links_match(ids: list[int], lists: list[Any], source: IndexSource) -> bool:
    """Whether the links of entries `ids` are exactly the subject lists `lists`, in order.

    Equal strings of subjects (none stored with a quote in it) and equal strings of the
    entry id of each link mean each entry's links are its list, link by link.
    """
    first, last = min(ids), max(ids)
    if last - first >= _ID_SPREAD * len(ids):
        return False
    entry_ids, subjects, count = source.chunk_links(first, last)
    if ids != sorted(ids):  # leaves integrated out of id order
        pairs = sorted(zip(ids, lists, strict=True))
        ids = [entry_id for entry_id, _ in pairs]
        lists = [subject_list for _, subject_list in pairs]
    if not count or entry_ids is None or subjects is None:
        return not any(lists)
    quotes = [subject_list.count(b'"') for subject_list in lists]
    return (
        subjects.count(b'"') == 2 * count - 2
        and b",".join(filter(None, lists)) == b'"' + subjects + b'"'
        and "".join([f"{entry_id}," * (n >> 1) for entry_id, n in zip(ids, quotes, strict=True)])
        == entry_ids + ","
    )


def _suspects(rows: Sequence[Any], lists: list[Any], source: IndexSource) -> list[Any]:
    """The rows the fast check did not confirm, in leaf order, links compared one by one."""
    links: dict[int, list[str]] = {}
    for entry_id, subject_id in source.leaf_links(rows[0][0], rows[-1][0] + 1):
        links.setdefault(entry_id, []).append(subject_id)
    return [
        row
        for row, subject_list in zip(rows, lists, strict=True)
        if subject_list is None or subject_list != _json_list(links.get(row[9], []))
    ]


def _json_list(subjects: list[str]) -> bytes | None:
    """The subjects as the entry's JSON lists them; None if one could not be listed so."""
    if any('"' in subject for subject in subjects):
        return None
    return ('"' + '","'.join(subjects) + '"').encode() if subjects else b""


def _index_problem(blob: bytes, columns: Sequence[Any], subjects: Sequence[str]) -> str | None:
    """The slow, exact comparison of one entry's bytes with its stored copies."""
    try:
        entry = AuditEntry.from_canonical(blob)
    except InvalidEntryError:
        return "entry is not a canonical entry"
    if tuple(columns) != query_columns(entry):
        return "entry's query columns do not match its content"
    if sorted(subjects) != sorted(set(entry.subject_ids)):
        return "entry's subject links do not match its content"
    return None


class _TimeFormatter:
    """`format_time` of epoch microseconds as bytes, the date and time cached per second."""

    def __init__(self) -> None:
        self._seconds: dict[int, bytes] = {}

    def __call__(self, time_us: int) -> bytes:
        return self.of_all([time_us])[0]

    def of_all(self, times_us: Sequence[int]) -> list[bytes]:
        """`format_time` of each, as bytes: one C-level divmod and one bytes format per
        time, the seconds' prefix looked up (and built once per distinct second)."""
        prefixes = self._seconds
        missing = self._prefix
        return [
            b"%b.%06dZ" % (prefixes.get(seconds) or missing(seconds), micros)
            for seconds, micros in map(divmod, times_us, repeat(1_000_000))
        ]

    def _prefix(self, seconds: int) -> bytes:
        prefix = format_time(_EPOCH + timedelta(seconds=seconds))[:19].encode()
        self._seconds[seconds] = prefix
        return prefix
