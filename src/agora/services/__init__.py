"""Agora's services, one package per bounded context. They share nothing but contracts and the
event platform (a checked rule: see the import contracts in pyproject.toml)."""
