"""The supply-chain checks of ``.ci/run``: ``bandit`` over the code and ``pip-audit`` over
the dependencies installed in the running environment (what ``pip install -e
'.[test]'`` resolved), with the policy of SECURITY.md:

- bandit: medium severity and confidence and above; findings already reviewed are in
  ``.ci/bandit-baseline.json`` (SECURITY.md says why each is accepted); a new one fails;
- pip-audit: an advisory with a fixed version fails (upgrade); one without a fix is
  listed and does not fail (nothing to upgrade to); when the vulnerability database
  cannot be reached (offline, or an index mirror that is not PyPI) the audit is skipped
  with one line saying so, never reported as clean.

Exit status 1 when a check fails, 0 otherwise. ``python tools/supply_chain.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The real folders of the package (bandit does not follow the links under basketflow/).
CODE = ("basketflow", "flows", "sinks", "models", "producers", "reports", "schemas",
        "features")
BASELINE = ROOT / ".ci" / "bandit-baseline.json"


def run_bandit() -> bool:
    """bandit over :data:`CODE` against the baseline; whether it passed."""
    if shutil.which("bandit") is None:
        print("bandit: skipped: not installed (pip install bandit)")
        return True
    done = subprocess.run(["bandit", "-q", "-r", *CODE, "-ll", "-ii", "-b", str(BASELINE)],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode == 0:
        print(f"bandit: no new findings (accepted ones: {BASELINE.relative_to(ROOT)})")
        return True
    print(done.stdout + done.stderr)
    print("bandit: new findings above: fix them, or review and add them to the baseline")
    return False


def audit_verdict(report: dict) -> tuple[bool, list[str]]:
    """Whether the pip-audit JSON ``report`` passes the policy, and the lines to print.

    >>> audit_verdict({"dependencies": [{"name": "a", "skip_reason": "not found on PyPI"}]})
    (True, ['pip-audit: skipped: the vulnerability database could not be reached (1 of 1 packages not audited)'])
    >>> ok, lines = audit_verdict({"dependencies": [{"name": "a", "version": "1", "vulns": [
    ...     {"id": "X-1", "fix_versions": ["2"]}, {"id": "X-2", "fix_versions": []}]}]})
    >>> ok, lines[0]
    (False, 'pip-audit: a 1: X-1 (fixed in 2)')
    """
    deps = [d for d in report.get("dependencies", [])
            if "editable" not in d.get("skip_reason", "")]
    unaudited = [d for d in deps if d.get("skip_reason")]
    if deps and len(unaudited) == len(deps):
        return True, [f"pip-audit: skipped: the vulnerability database could not be reached "
                      f"({len(unaudited)} of {len(deps)} packages not audited)"]
    lines, ok = [], True
    for dep in deps:
        for vuln in dep.get("vulns", []):
            fixes = vuln.get("fix_versions") or []
            ok = ok and not fixes
            lines.append(f"pip-audit: {dep['name']} {dep.get('version')}: {vuln['id']} "
                         + (f"(fixed in {', '.join(fixes)})" if fixes else "(no fix yet)"))
    lines.append(f"pip-audit: {len(deps) - len(unaudited)} packages audited"
                 + (f", {len(unaudited)} not found in the database" if unaudited else "")
                 + ("" if ok else "; upgrade the packages with a fix"))
    return ok, lines


def run_pip_audit() -> bool:
    """pip-audit over this environment, judged by :func:`audit_verdict`."""
    if shutil.which("pip-audit") is None:
        print("pip-audit: skipped: not installed (pip install pip-audit)")
        return True
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        done = subprocess.run(["pip-audit", "--skip-editable", "-f", "json", "-o", str(out)],
                              capture_output=True, text=True, timeout=600)
        if not out.is_file() or not out.read_text().strip():
            first = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"pip-audit: skipped: the vulnerability database could not be reached "
                  f"({first[:120]})")
            return True
        ok, lines = audit_verdict(json.loads(out.read_text()))
    print("\n".join(lines))
    return ok


def main() -> int:
    """Both checks; 1 when either fails."""
    results = [run_bandit(), run_pip_audit()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
