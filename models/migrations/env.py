"""Alembic environment: runs on the engine handed over in `config.attributes`."""

from alembic import context

import models.books  # noqa: F401  (registers the books' tables on Base.metadata)
from models.tables import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite can only ALTER by copying tables
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
