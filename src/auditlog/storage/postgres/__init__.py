"""The PostgreSQL backend: production storage for several service processes on one database."""
