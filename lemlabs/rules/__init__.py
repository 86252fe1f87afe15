"""Rule packs and the threshold table. ``ALL_RULES`` is every rule, single-test and composite."""

from lemlabs.rules import monitoring, platelets, renal, thyroid
from lemlabs.rules.base import Gate, Rule
from lemlabs.rules.thresholds import Thresholds, default_thresholds, load_thresholds

ALL_RULES: tuple[Rule, ...] = (
    *thyroid.RULES,
    *platelets.RULES,
    *renal.RULES,
    *thyroid.COMPOSITES,
    *renal.COMPOSITES,
    *monitoring.RULES,
)
RULES_BY_ID = {rule.id: rule for rule in ALL_RULES}
ALL_GATES: tuple[Gate, ...] = (*thyroid.GATES, *platelets.GATES, *renal.GATES)
TITLES = {
    "thyroid.overt_hyperthyroidism": "Overt hyperthyroidism pattern",
    "thyroid.subclinical_hyperthyroidism": "Low TSH (subclinical hyperthyroidism)",
    "thyroid.overt_hypothyroidism": "Overt hypothyroidism pattern",
    "thyroid.subclinical_hypothyroidism": "Raised TSH (subclinical hypothyroidism)",
    "thyroid.fluctuation": "TSH swinging between low and high",
    "thyroid.discordant": "Discordant TSH and free T4",
    "itp.thrombocytopenia": "Low platelet count",
    "itp.suspected": "Platelets below 100: suspected ITP",
    "itp.platelet_fall": "Platelet count halved from baseline",
    "anti_gbm.creatinine_high": "Creatinine above the reference interval",
    "anti_gbm.creatinine_rise": "Creatinine rise from baseline",
    "anti_gbm.haematuria": "Blood in the urine",
    "anti_gbm.haematuria_persistent": "Persistent blood in the urine",
    "anti_gbm.proteinuria": "Protein in the urine",
    "anti_gbm.albuminuria": "Albumin in the urine",
    "anti_gbm.haematuria_proteinuria": "Blood and protein in the urine",
    "anti_gbm.pattern": "Anti-GBM / glomerulonephritis pattern",
    "monitoring.overdue": "Monitoring tests overdue",
}
"""What each finding code is called where a clinician reads first (cards, reports, plots)."""

__all__ = [
    "ALL_GATES",
    "ALL_RULES",
    "RULES_BY_ID",
    "TITLES",
    "Gate",
    "Rule",
    "Thresholds",
    "default_thresholds",
    "load_thresholds",
]
