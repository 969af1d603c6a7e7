"""Storage: SQLAlchemy 2 async engine, declarative models and Alembic migrations."""
