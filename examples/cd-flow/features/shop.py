"""orders (the root, loaded by target-strata) -> priced(net, region) -> report(label).

``VERSION`` (``1``, the default, or ``2``) picks the definitions, standing in for the code of
the main branch and that of a pull request. Version 2 changes two fields of ``priced``:

* ``region``: refactored (a lookup table instead of a chain of conditions), same result for
  every country; its code version goes to 2, and a migration *reconciles* it.
* ``net``: a real change (VAT is now 21 %, was 20 %); its code version goes to 2, and a
  migration leaves it to *recompute*, with ``report.label`` that reads it.

Polars is imported inside ``compute``, so listing the features loads no dataframe library.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import strata as st

if TYPE_CHECKING:
    from collections.abc import Mapping

    import polars as pl

VERSION = os.environ.get("VERSION", "1")
if VERSION not in ("1", "2"):
    message = f"VERSION={VERSION}: the example has versions 1 and 2"
    raise ValueError(message)

VAT = {"1": 0.20, "2": 0.21}[VERSION]
EU = ("DE", "ES", "FR", "IT")
NORTH_AMERICA = ("CA", "US")
REGIONS = dict.fromkeys(EU, "EU") | dict.fromkeys(NORTH_AMERICA, "NA")


class Orders(
    st.Feature,
    spec=st.FeatureSpec("orders", id_columns=["order_id"], fields=["amount", "country"]),
):
    """The Singer stream ``orders`` (data/orders.jsonl): an amount with VAT and a country code."""


class Priced(
    st.Feature,
    spec=st.FeatureSpec(
        "priced",
        id_columns=["order_id"],
        deps=[Orders],
        fields=[
            st.FieldSpec("net", code_version=VERSION, deps=[st.FieldDep(Orders, ["amount"])]),
            st.FieldSpec("region", code_version=VERSION, deps=[st.FieldDep(Orders, ["country"])]),
        ],
    ),
):
    """The amount without VAT, and the region of the country."""

    def compute(self, inputs: Mapping[type[st.Feature], pl.DataFrame]) -> pl.DataFrame:
        """``amount`` -> ``net``, ``country`` -> ``region``."""
        import polars as pl

        orders = inputs[Orders]
        region = region_v2(pl.col("country")) if VERSION == "2" else region_v1(pl.col("country"))
        return orders.select("order_id", (pl.col("amount") / (1 + VAT)).round(2).alias("net"), region.alias("region"))


class Report(
    st.Feature,
    spec=st.FeatureSpec(
        "report",
        id_columns=["order_id"],
        deps=[Priced],
        fields=[st.FieldSpec("label", code_version="1", deps=[st.FieldDep(Priced, ["net", "region"])])],
    ),
):
    """A label per order: its region and whether it is a large one (net 100 or more)."""

    def compute(self, inputs: Mapping[type[st.Feature], pl.DataFrame]) -> pl.DataFrame:
        """``net``, ``region`` -> ``label``."""
        import polars as pl

        size = pl.when(pl.col("net") >= 100).then(pl.lit("large")).otherwise(pl.lit("small"))  # noqa: PLR2004
        return inputs[Priced].select("order_id", pl.concat_str(pl.col("region"), size, separator=" ").alias("label"))


def region_v1(country: pl.Expr) -> pl.Expr:
    """Version 1: a chain of conditions."""
    import polars as pl

    eu = pl.when(country.is_in(EU)).then(pl.lit("EU"))
    return eu.when(country.is_in(NORTH_AMERICA)).then(pl.lit("NA")).otherwise(pl.lit("other"))


def region_v2(country: pl.Expr) -> pl.Expr:
    """Version 2: the same regions from a lookup table."""
    return country.replace_strict(REGIONS, default="other")
