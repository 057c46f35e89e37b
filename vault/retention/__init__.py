"""Retention: rules for dormant accounts, notices, legal holds and anonymization (DESIGN §6).

- `rules`: `policies/retention.yaml`, validated at start-up;
- `job`: the batched, resumable, audited run (notices, then anonymization), its
  `report`, the runner `locking` and the cron `scheduler`;
- `service`: notices, legal holds and the dry-run report behind RetentionService;
- `notices`, `store`, `tables`: the persistence.

Modules are imported by name (no re-exports here): the record service imports
`notices` to cancel a notice on activity, and must not pull in the job.
"""
