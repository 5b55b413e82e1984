"""Static security scan of the package (S6, R6): bandit finds no medium or high issue.

A pytest test rather than a make step so the failure-mode map can name it for S6/R6 and
it runs wherever the suite runs. Low-severity findings (asserts in the simulator, seeded
random jitter) are reported by `bandit -r tecl_pipeline` but do not fail the build.
"""

import json
import subprocess
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BANDIT = Path(sysconfig.get_path("scripts")) / "bandit"


def test_bandit_finds_no_medium_or_high_issue():
    done = subprocess.run(
        [str(BANDIT), "-r", "tecl_pipeline", "-ll", "-q", "-f", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    result = json.loads(done.stdout)
    findings = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} "
        f"{r['issue_severity']}/{r['issue_confidence']}: {r['issue_text']}"
        for r in result["results"]
    ]
    assert findings == [], "\n".join(findings)
    # A file bandit could not parse was not scanned: that is a failure too, not a pass.
    assert result["errors"] == [], result["errors"]
    assert done.returncode == 0, done.stderr
    assert result["metrics"]["_totals"]["loc"] > 1000, "bandit scanned almost nothing"
