"""Embedding: backends (registry with lazy factories), crops, the streaming engine, the store and the cache."""
