"""strata: fresh data for ML features, from the source system to the last embedding."""

from strata.errors import StrataError

__version__ = "0.1.0"

__all__ = ["StrataError", "__version__"]
