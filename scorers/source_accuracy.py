"""Source-validation accuracy: the classic, shift-blind choice."""

from __future__ import annotations

from shiftbench.scoring import Candidate, Scorer, ValidationView


class SourceAccuracy(Scorer):
    """Accuracy on the held-out labelled source part (the classic, shift-blind choice)."""

    name = "source_accuracy"

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        return float((candidate.predict(view.X_val, "source") == view.y_val).mean())
