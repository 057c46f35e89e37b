"""`customer-vault`, the command line: `main` builds the command tree from the groups.

- `main`: the root app (serve, migrate, keys, token) and every group added once;
- `options`: the options local commands share (data dir, database URL, durations);
- `remote`: the options and client of the commands that call a running vault;
- `subjects`, `consent`, `rights`, `policy`, `retention`: one group each.

Groups import `options` and `remote`, never `main`; `main` imports the groups.
"""
