#!/usr/bin/env python3
"""Checks the ARM templates `mss sentinel render` writes against Microsoft's own API models.

No ARM linter runs offline here (arm-ttk is PowerShell; the Bicep CLI is a separate download),
so this uses the generated models of the Azure SDK for Python, pinned in scripts/dev-tools.sh:
azure-mgmt-securityinsight (Sentinel alert rules; its models are those of API 2021-10-01,
older than the 2023-02-01 the templates deploy, with the same Scheduled-rule properties) and
azure-mgmt-applicationinsights (workbooks, API 2022-04-01, the version deployed).

For every resource it checks:
- every property name is one the API model knows (a misspelt one would be silently ignored
  by ARM, e.g. `queryFrequncy`): the model is built from the template's JSON and serialized
  back, and anything that did not survive the round trip is reported;
- the model's own validation (required properties, constraints);
- enum values against the SDK's enums: severity, tactics, trigger operator, entity types,
  event grouping, workbook kind.

  .venv/bin/python scripts/arm_check.py                 the snapshots in shared/tests/data/sentinel/
  .venv/bin/python scripts/arm_check.py FILE.json...    these templates (e.g. a render's output)
"""

import glob
import json
import os
import sys

from azure.mgmt.applicationinsights.v2022_04_01 import models as ai
from azure.mgmt.securityinsight import models as si

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALERT_RULE = "Microsoft.OperationalInsights/workspaces/providers/alertRules"
# Tactics that API versions after the SDK's 2021-10-01 added (2023-02-01 has them).
NEWER_TACTICS = {"Reconnaissance", "ResourceDevelopment", "ImpairProcessControl", "InhibitResponseFunction"}
WORKBOOK = "Microsoft.Insights/workbooks"


def paths(d, prefix=""):
    """Every key path of a JSON value (list items as [])."""
    out = set()
    if isinstance(d, dict):
        for k, v in d.items():
            out.add(prefix + k)
            out |= paths(v, prefix + k + ".")
    elif isinstance(d, list):
        for v in d:
            out |= paths(v, prefix + "[].")
    return out


def values(enum):
    return {e.value for e in enum}


def round_trip(model_cls, body):
    """Problems of building `model_cls` from `body` and serializing it back."""
    problems = []
    m = model_cls.from_dict(body)
    if hasattr(m, "validate"):
        problems += [f"model validation: {e}" for e in (m.validate() or [])]
    lost = paths(body) - paths(m.serialize(keep_readonly=True))
    problems += [f"unknown property {p}" for p in sorted(lost)]
    return problems


def check_rule(r):
    p = r.get("properties", {})
    problems = round_trip(si.ScheduledAlertRule, {"kind": r.get("kind"), "properties": p})
    if r.get("kind") != "Scheduled":
        problems.append(f"kind {r.get('kind')!r} is not Scheduled")
    if p.get("severity") not in values(si.AlertSeverity):
        problems.append(f"severity {p.get('severity')!r} not in {sorted(values(si.AlertSeverity))}")
    if p.get("triggerOperator") not in values(si.TriggerOperator):
        problems.append(f"triggerOperator {p.get('triggerOperator')!r}")
    for t in p.get("tactics", []):
        if t not in values(si.AttackTactic) | NEWER_TACTICS:
            problems.append(f"tactic {t!r} not in {sorted(values(si.AttackTactic))}")
    for m in p.get("entityMappings", []):
        if m.get("entityType") not in values(si.EntityMappingType):
            problems.append(f"entity type {m.get('entityType')!r}")
    kind = p.get("eventGroupingSettings", {}).get("aggregationKind")
    if kind is not None and kind not in values(si.EventGroupingAggregationKind):
        problems.append(f"aggregationKind {kind!r}")
    return problems


def check_workbook(r):
    body = {"kind": r.get("kind"), "location": r.get("location"), "properties": r.get("properties", {})}
    problems = round_trip(ai.Workbook, body)
    if r.get("kind") not in values(ai.WorkbookSharedTypeKind):
        problems.append(f"kind {r.get('kind')!r} not in {sorted(values(ai.WorkbookSharedTypeKind))}")
    return problems


def main(argv):
    files = argv or sorted(glob.glob(os.path.join(ROOT, "shared/tests/data/sentinel/*/*.json")))
    if not files:
        print("arm_check: no template found", file=sys.stderr)
        return 1
    resources = bad = 0
    for f in files:
        with open(f, encoding="utf-8") as fh:
            t = json.load(fh)
        rel = os.path.relpath(f, ROOT)
        for i, r in enumerate(t.get("resources", [])):
            resources += 1
            if r.get("type") == ALERT_RULE:
                problems = check_rule(r)
            elif r.get("type") == WORKBOOK:
                problems = check_workbook(r)
            else:
                problems = [f"unexpected resource type {r.get('type')!r}"]
            for p in problems:
                print(f"error: {rel}: resources[{i}]: {p}")
            bad += bool(problems)
    print(f"arm_check: {resources} resources in {len(files)} templates: {bad} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
