"""The pure core: event values and validation, canonical bytes, queries and cursors.

Nothing in this package does I/O, SQL or HTTP.
"""
