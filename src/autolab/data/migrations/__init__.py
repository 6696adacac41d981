"""Alembic migrations of the run store, packaged so that an installed autolab can migrate."""
