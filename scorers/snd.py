"""Soft neighbourhood density (Saito et al. 2021)."""

from __future__ import annotations

import numpy as np

from shiftbench.scoring import Candidate, Scorer, ValidationView, soft_neighbourhood_density
from shiftbench.validation import check_number


class SoftNeighbourhoodDensity(Scorer):
    """SND on target probabilities (denser soft neighbourhoods score higher)."""

    name = "snd"

    def __init__(self, temperature: float = 0.05):
        self.temperature = check_number(temperature, "temperature", self.name, above=0)

    def score_output(self, probs: np.ndarray) -> float:
        return soft_neighbourhood_density(probs, self.temperature)

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        return self.score_output(candidate.predict_proba(view.target.X))
