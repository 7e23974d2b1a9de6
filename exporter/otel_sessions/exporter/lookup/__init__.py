"""Session lookups over the store: list queries with filters and sorts, live tail."""
