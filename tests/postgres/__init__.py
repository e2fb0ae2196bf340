"""PostgreSQL as a deployment runs it: several service processes on one database, and the
database going down and coming back under a running service."""
