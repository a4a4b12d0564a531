"""A record's commit says "+dirty" for changed code, not for the published results a run writes itself."""

from __future__ import annotations

import subprocess

from shiftbench import provenance


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True, capture_output=True)


def test_a_changed_results_folder_is_not_a_dirty_checkout(tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "results" / "table.md").write_text("old\n")
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "init")
    monkeypatch.chdir(tmp_path / "src")  # any folder of the checkout
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()

    def current() -> str:
        provenance.git_commit.cache_clear()
        return provenance.git_commit()

    (tmp_path / "results" / "table.md").write_text("republished\n")
    assert current() == commit
    (tmp_path / "src" / "code.py").write_text("x = 2\n")
    assert current() == commit + "+dirty"
    provenance.git_commit.cache_clear()
