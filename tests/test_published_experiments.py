"""The experiments behind the published tables (results/<name>/) compose and expand to the cells they
describe: ``shiftbench run --dry-run experiment=<name>`` exits 0 and lists every cell, and the methods'
settings are exactly the ones the experiment's comment promises."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from shiftbench.cli import main

SEEDS = 3
#: lame's grid: knn and rbf affinities with k in {3, 5, 7}, plus the linear affinity (which has no k)
LAME_SETTINGS = 2 * 3 + 1
#: experiment -> (scenarios per dataset block x blocks, settings per method)
EXPERIMENTS = {
    # 4 corruptions x 2 orders, plus the continual and the mixed stream over the 4; every method's own grid
    # (tent at one step), MEMO at one setting
    "tta_digits": (4 * 2 + 2, {"source_only": 1, "bn_adapt": 1, "tent": 3, "lame": LAME_SETTINGS, "eta": 6,
                               "eata": 6, "sar": 3, "cotta": 6, "rotta": 6, "note": 4, "t3a": 6, "shot_im": 3,
                               "deyo": 6, "pseudo_label": 6, "memo": 1}),
    # clean and gaussian_noise targets x forward / uniform / backward long tails; the adapter on 3 bases
    "tta_longtail": (2 * 3, {"source_only": 1, "bn_adapt": 1, "tent": 1, "label_shift_adapter": 3}),
    # 7 covariate-shift datasets, one target each; DW-GCS with its two losses
    "shift_methods_covariate": (7, {"source_only": 1, "kmm_iw": 1, "domain_classifier_iw": 1, "dwgcs": 2,
                                    "skada_kmm": 1, "skada_coral": 1, "skada_subspace_alignment": 1,
                                    "skada_jdot": 1}),
    # 2 pretrained models x Dirichlet alphas {1, 0.3}; EM online calibrated or not and on the whole target,
    # BBSE hard/soft
    "shift_methods_label": (2 * 2, {"source_only": 1, "em_correction": 3, "bbse_correction": 2}),
    # 3 skada shifts and 2 biased-sampling sets; every adapter over 3 values of C
    "da_selection": (5, {"source_only": 1, "kmm_iw": 3, "domain_classifier_iw": 3, "skada_kmm": 3,
                         "skada_coral": 3, "skada_subspace_alignment": 3}),
    # NYC flights val and test by month; digits: 4 corruptions x 5 severities, the natural shift, 3 label shifts;
    # census employment: test by age decile, val by survey year
    "performance_estimation": (2 + 4 * 5 + 1 + 3 + 2, {"reference_accuracy": 1, "cbpe": 1, "mcbpe": 4, "atc": 2, "doc": 1,
                                                   "iw_estimator": 2}),
}
LISTED = re.compile(r"^  \S+  \S+ \S+ \S+ (?P<method>\S+) (?P<hparams>\{.*\}) seed=(?P<seed>-?\d+)$")


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_published_experiment_dry_run_lists_its_cells(name, tmp_path, capsys):
    units, settings = EXPERIMENTS[name]
    code = main(["run", "--dry-run", f"experiment={name}", f"store_dir={tmp_path / 'store'}"])
    out = capsys.readouterr().out
    expected = units * sum(settings.values()) * SEEDS
    assert code == 0
    assert out.startswith(f"{expected} cells, 0 cached, {expected} to compute")
    listed = [m.groupdict() for line in out.splitlines() if (m := LISTED.match(line))]
    assert len(listed) == expected
    found = defaultdict(set)
    for cell in listed:
        found[cell["method"]].add(json.dumps(json.loads(cell["hparams"]), sort_keys=True))
    assert {m: len(h) for m, h in found.items()} == settings
    assert {int(c["seed"]) for c in listed} == set(range(SEEDS))
