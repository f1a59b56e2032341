"""Feature modules of the CD flow example (named in strata.yml under features.entrypoints)."""
