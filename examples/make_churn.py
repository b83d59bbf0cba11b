"""Generate examples/churn.csv: a small, realistic customer-churn table (bundled example data).

Deterministic (seed 7). Columns mix numerics, categoricals, a date, missing values and an ID, and the
target `churned` depends on them with noise, so models have something real to find.
Run: python examples/make_churn.py
"""

import csv
import math
import os
import random

random.seed(7)
N = 2000
plans = ["basic", "standard", "premium"]
regions = ["north", "south", "east", "west"]
rows = []
for i in range(N):
    tenure = random.randint(1, 72)
    plan = random.choices(plans, weights=[5, 3, 2])[0]
    region = random.choice(regions)
    monthly = round({"basic": 20, "standard": 45, "premium": 80}[plan] + random.gauss(0, 6), 2)
    tickets = min(12, int(random.expovariate(0.6)))
    usage = round(max(0.0, random.gauss(30 + 2 * tenure ** 0.5, 12)), 1)
    age = random.randint(18, 80) if random.random() > 0.05 else ""
    start_day = 1 + (i * 7) % 28
    signup = f"20{21 + (i % 4)}-{1 + (i % 12):02d}-{start_day:02d}"
    logit = (-1.2 - 0.045 * tenure + 0.35 * tickets - 0.02 * usage + (0.6 if plan == "basic" else 0.0)
             + (0.3 if region == "south" else 0.0) + random.gauss(0, 0.8))
    churned = 1 if random.random() < 1 / (1 + math.exp(-logit)) else 0
    rows.append([f"C{100000 + i}", tenure, plan, region, monthly, tickets, usage, age, signup, churned])

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "churn.csv")
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["customer_id", "tenure_months", "plan", "region", "monthly_charges", "support_tickets",
                "usage_hours", "age", "signup_date", "churned"])
    w.writerows(rows)
print(f"wrote {out}: {N} rows")
