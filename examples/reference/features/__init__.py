"""Feature modules of the reference project (named in strata.yml under features.entrypoints)."""
