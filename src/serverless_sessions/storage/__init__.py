"""Session storages: the seed's ``SessionStorage`` interface and its implementations."""
