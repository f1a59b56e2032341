"""Where ``strata build`` runs ``compute`` besides its own process pool (see :mod:`strata.build`).

Each executor is imported only when a build uses it, so its library never slows start-up.
"""
