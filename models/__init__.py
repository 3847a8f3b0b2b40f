"""Data: ORM tables, the SQLite engine and its single writer, the hash chain, migrations.

Imports nothing of ours, so it can be tested alone.
"""
