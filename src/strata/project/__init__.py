"""The project layer: the project file, its schema, config resolution, environments, ``.env``.

Imports nothing else from strata but ``errors``; every other package may read the project.
"""
