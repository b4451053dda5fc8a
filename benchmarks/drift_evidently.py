"""``basketflow drift`` beside Evidently's statistical tests on the same samples: each
feature's PSI or Jensen-Shannon distance as ours computes it and as Evidently's
``psi_stat_test`` and ``jensenshannon_stat_test`` do, and the time of each.

Evidently is not a dependency of basketflow (it brings about 80 packages, 190 MB): run this
in a virtual environment of its own with both installed
(``pip install -e . evidently``), on an offline store with a feature log:

    python benchmarks/drift_evidently.py --data-dir DATA --date 2011-09-15
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

from basketflow.reports.drift import (  # noqa: E402
    CATEGORICAL,
    VIEWS,
    bin_shares,
    default_reference,
    js_distance,
    measured,
    psi,
    quantile_edges,
    view_samples,
)
from basketflow.schemas.features import registry  # noqa: E402


def evidently_tests() -> tuple[object, object]:
    """Evidently's PSI and Jensen-Shannon tests (their module moved in 0.7)."""
    try:
        from evidently.legacy.calculations.stattests import (
            jensenshannon_stat_test,
            psi_stat_test,
        )
    except ImportError:
        from evidently.calculations.stattests import (  # type: ignore[no-redef]
            jensenshannon_stat_test,
            psi_stat_test,
        )
    return psi_stat_test, jensenshannon_stat_test


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    args = parser.parse_args()
    import evidently
    import pandas as pd
    psi_test, js_test = evidently_tests()
    print(f"machine: {describe()}; evidently {evidently.__version__}; "
          f"load average {os.getloadavg()[0]:.2f}")
    first, last = default_reference(args.date)
    ref_days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    offline = args.data_dir / "offline"
    ours_s = theirs_s = 0.0
    print(f"{'view:feature':<36} {'n day':>6} {'ours':>9} {'evidently':>10}  measure")
    for name in VIEWS:
        view = registry()[name]
        today, ref = view_samples(offline, view, [args.date]), view_samples(offline, view,
                                                                            ref_days)
        if today is None or ref is None:
            continue
        for column, dtype in measured(view):
            a = today[column].to_pandas().dropna()
            e = ref[column].to_pandas().dropna()
            if not len(a) or not len(e):
                continue
            start = time.perf_counter()
            if dtype in CATEGORICAL:
                ours = js_distance(a.astype(str).value_counts().to_dict(),
                                   e.astype(str).value_counts().to_dict())
                kind, test = "cat", js_test
            else:
                edges = quantile_edges(e.to_numpy(float))
                ours = psi(bin_shares(a.to_numpy(float), edges),
                           bin_shares(e.to_numpy(float), edges))
                kind, test = "num", psi_test
            mid = time.perf_counter()
            theirs, _drifted = test.func(pd.Series(e), pd.Series(a), kind, 0.1)  # type: ignore[attr-defined]
            ours_s += mid - start
            theirs_s += time.perf_counter() - mid
            measure = "JS distance" if kind == "cat" else "PSI"
            print(f"{name + ':' + column:<36} {len(a):>6} {ours:>9.4f} {theirs:>10.4f}  {measure}")
    print(f"time: ours {ours_s * 1000:.1f} ms, evidently {theirs_s * 1000:.1f} ms "
          f"(the tests alone, same samples)")


if __name__ == "__main__":
    main()
