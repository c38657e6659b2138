# A credit score from an applicant's private financial history, computed where neither the
# lender's node operator nor anyone else sees the data. Input: JSON (see applicant.json).
# Output: the score, a decision and the factors that moved it; the raw data never leaves.
#   ecld task run python --code examples/python/credit_score.py --input examples/python/applicant.json
import hashlib
import json
import math

a = json.loads(INPUT)
income = a["monthly_income"]
debts = sum(d["monthly_payment"] for d in a["debts"])
dti = debts / income if income > 0 else 1.0
utilisation = sum(c["balance"] for c in a["cards"]) / max(1, sum(c["limit"] for c in a["cards"]))
late = sum(1 for p in a["payments"] if p["days_late"] > 30)
history_years = a["credit_history_months"] / 12

factors = {
    "debt_to_income": round(-220 * max(0.0, dti - 0.2), 1),
    "card_utilisation": round(-180 * max(0.0, utilisation - 0.3), 1),
    "late_payments": -45 * late,
    "history_length": round(60 * math.log1p(history_years) / math.log1p(20), 1),
}
score = max(300, min(850, round(680 + sum(factors.values()))))
decision = "approve" if score >= 670 else "review" if score >= 600 else "decline"
print(json.dumps({
    "applicant": hashlib.sha256(a["applicant_id"].encode()).hexdigest()[:16],
    "score": score,
    "decision": decision,
    "debt_to_income": round(dti, 3),
    "factors": factors,
}, sort_keys=True))
