"""Adapters: one module per outside service, plus in-memory fakes (``fakes``) for tests and demos."""
