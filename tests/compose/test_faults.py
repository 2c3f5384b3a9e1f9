"""The fault suite under pytest: rounds of kill, pause and network cut under load (faults.py).

FAULT_ROUNDS sets the number of rounds (2 by default, about 2 minutes).
"""

import os

from faults import Settings, print_outcome, run_faults


def test_no_acknowledged_message_is_lost_through_faults(compose_cluster):
    settings = Settings(rounds=int(os.environ.get("FAULT_ROUNDS", "2")))
    print(f"fault suite seed {settings.seed}")
    outcome = run_faults(compose_cluster, settings)
    print_outcome(outcome)
    report = outcome.report
    assert report.acked > 0 and len(outcome.faults) == 3 * settings.rounds
    assert report.lost == [], f"lost {len(report.lost)}: {report.lost[:20]}"
    assert report.duplicated == [], f"duplicated: {report.duplicated[:20]}"
    assert report.out_of_order == [], report.out_of_order[:20]
    assert report.commit_regressions == [], report.commit_regressions[:20]
