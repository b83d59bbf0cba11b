"""A daily demand table ordered in time (examples/time_ordered/demand.csv, shipped; this script made it).

One row per day: the label `high_demand` says whether mean demand over the NEXT 7 days beats the
trailing 28 days' mean, so each label looks 7 days ahead (the horizon validate purges with). Features are known
on the day: weekday, the temperature and its 7-day change, the promotions planned for the next 7 days and the
last 7 days' demand. Deterministic (seed 5).
Run: python examples/time_ordered/make_data.py examples/time_ordered/demand.csv
"""

import sys

import numpy as np
import pandas as pd

rng = np.random.default_rng(5)
n = 900
day = pd.date_range("2022-01-01", periods=n, freq="D")
temp = 15 + 10 * np.sin(2 * np.pi * np.arange(n) / 365) + rng.normal(0, 2, n)
promo = (rng.random(n) < 0.15).astype(int)
demand = pd.Series(100 + 2.0 * temp + 30 * promo + 10 * (day.weekday >= 5) + rng.normal(0, 8, n))
ahead = demand[::-1].rolling(7).mean()[::-1].shift(-1)  # mean demand over the next 7 days
trailing = demand.rolling(28).mean()
planned = pd.Series(promo)[::-1].rolling(7).sum()[::-1].shift(-1)  # promotions are planned (known) ahead
df = pd.DataFrame({"day": day.strftime("%Y-%m-%d"), "weekday": day.day_name().str[:3],
                   "temperature": temp.round(1), "temperature_change_7d": (pd.Series(temp) - pd.Series(temp).shift(7)).round(1),
                   "promos_planned_next_7d": planned, "demand_last_7d": demand.rolling(7).mean().round(1),
                   "high_demand": (ahead > trailing).astype(int)})
df = df.iloc[28:-8].reset_index(drop=True)
df["promos_planned_next_7d"] = df["promos_planned_next_7d"].astype(int)
df.to_csv(sys.argv[1], index=False)
