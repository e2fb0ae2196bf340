"""Route handlers, one module per group of routes; each exposes ``routes(...)``."""
