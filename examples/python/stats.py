# Statistics over a private CSV: count, mean, median, standard deviation, min and max of
# every numeric column, and the row count per value of every text column.
#   ecld task run python --code examples/python/stats.py --input examples/python/salaries.csv
import csv
import io
import json
import statistics

rows = list(csv.DictReader(io.StringIO(INPUT)))
columns = rows[0].keys() if rows else []
numeric, text = {}, {}
for name in columns:
    values = [r[name].strip() for r in rows if r[name].strip() != ""]
    try:
        numeric[name] = [float(v) for v in values]
    except ValueError:
        text[name] = values

report = {"rows": len(rows), "numeric": {}, "categories": {}}
for name, xs in numeric.items():
    report["numeric"][name] = {
        "count": len(xs),
        "mean": round(statistics.mean(xs), 4),
        "median": statistics.median(xs),
        "stdev": round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0,
        "min": min(xs),
        "max": max(xs),
    }
for name, xs in text.items():
    counts = {}
    for x in xs:
        counts[x] = counts.get(x, 0) + 1
    report["categories"][name] = dict(sorted(counts.items()))

print(json.dumps(report, indent=2, sort_keys=True))
