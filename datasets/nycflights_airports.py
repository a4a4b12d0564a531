"""NYC flights 2013 with an airport shift: source = flights from one New York airport, target =
flights from another, over the same months (delay > 15 min; features and weather join of
:mod:`shiftbench.datasets._flights`).

Source flights are split 60/20/20 into ``train`` / ``id_val`` / ``id_test``; the target airport's
flights into ``val`` / ``test`` halves (stratified, seeded). ``max_per_airport`` subsamples each
airport (seeded) to keep kernel methods tractable.
"""

from __future__ import annotations

import numpy as np

from shiftbench.dataset import Grouper, Split
from shiftbench.datasets._sampling import labelled_parts
from shiftbench.datasets._flights import ORIGINS, WEATHER, FlightsDataset, features, flights_with_weather
from shiftbench.errors import UnknownNameError


class NYCFlightsAirports(FlightsDataset):
    """NYC flights 2013: delay prediction trained at one airport, deployed at another."""

    name = "nycflights_airports"
    seed_option = "seed"

    def __init__(self, source_origin: str = "EWR", target_origin: str = "LGA", months: tuple[int, ...] = (1, 2, 3),
                 max_per_airport: int | None = 3000, seed: int = 0):
        super().__init__()
        for origin in (source_origin, target_origin):
            if origin not in ORIGINS:
                raise UnknownNameError("origin airport", origin, list(ORIGINS))
        df = flights_with_weather()
        df = df[df["month"].isin(list(months)) & df["origin"].isin([source_origin, target_origin])]
        if max_per_airport is not None:
            df = df.groupby("origin").sample(frac=1.0, random_state=seed).groupby("origin").head(max_per_airport)
        df = df.sort_index().reset_index(drop=True)
        y = (df["arr_delay"] > 15).to_numpy(np.int64)
        is_source = (df["origin"] == source_origin).to_numpy()
        x = features(df, df.loc[is_source, WEATHER].median())
        meta = df[["month", "day", "origin", "carrier", "time_hour"]].assign(flight_row=np.arange(len(df)), y=y)
        self.n_classes, self.class_names = 2, ["on_time", "delayed"]
        self.grouper = Grouper(["carrier"])
        index = {**labelled_parts({"train": 0.6, "id_val": 0.2, "id_test": 0.2}, np.flatnonzero(is_source), y, seed),
                 **labelled_parts({"val": 0.5, "test": 0.5}, np.flatnonzero(~is_source), y, seed)}
        for key, idx in index.items():
            self.splits[key] = Split(key, y[idx], meta.iloc[idx], x=x[idx])
