"""The registry: one SQLite file (WAL) with numbered migrations and a single writer thread."""

from appliance.registry.database import Registry, RegistryBusy, Rows, first_row, new_id, utcnow

__all__ = ["Registry", "RegistryBusy", "Rows", "first_row", "new_id", "utcnow"]
