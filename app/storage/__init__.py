"""The proxy's own storage: an SQL database (SQLite embedded, or PostgreSQL) and Redis."""
