"""Response caching: exact and semantic, on disk (default) or in Redis."""
