"""Use cases: ingest, reads and authentication. Knows the Store protocol, not HTTP nor SQL."""
