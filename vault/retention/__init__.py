"""Retention: rules for dormant accounts, notices, legal holds and anonymization (DESIGN §6).

- `rules`: `policies/retention.yaml`, validated at start-up;
- `job`: the batched, resumable, audited run (notices, then anonymization), its
  `report`, the runner `locking` and the cron `scheduler`;
- `batches` (one transaction each), `pipeline` and `preparer` (the next batch made ready
  while one writes, in a child process on a large run), `anonymizer` (what is kept);
- `service`: notices, legal holds and the dry-run report behind RetentionService;
- `store`: the job's set-at-a-time queries. The notice and hold rows and their tables
  are storage's (`vault.storage.notices`, `vault.storage.retention_tables`), so the
  record service cancels a notice on activity without importing retention; the shred
  itself is `vault.storage.shredding`.
"""
