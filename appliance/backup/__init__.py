"""Backup and restore of a home, and the refusal of a corrupt registry.

`appliance backup OUT` writes one archive: a consistent copy of the registry taken with SQLite's
online backup API while the server keeps writing (snapshot.py), the files that copy references,
each verified against its digest on the way (references.py, create.py), and a manifest of them
all (archive.py). `appliance restore FROM HOME` checks every file against the manifest and the
registry with `PRAGMA integrity_check` before anything is moved into place (restore.py). Every
open of a registry runs `PRAGMA quick_check` while it is small, and the server's start and
`appliance check` whatever its size (integrity.py). The scheduled `backup` job keeps the newest
N archives (retention.py). How and why: docs/backup.md.

Nothing is imported here: the registry imports `appliance.backup.integrity` at every open.
"""
