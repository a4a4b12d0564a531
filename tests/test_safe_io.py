"""shiftbench.safe_io: the restricted unpickler (MetaShift's meta-data) and the archive extractor that refuses
members outside its target (the WILDS downloader's and the corruption datasets' archives)."""

from __future__ import annotations

import io
import os
import pickle
import shlex
import shutil
import sys
import tarfile
import zipfile
from collections import defaultdict
from pathlib import Path

import pytest

from shiftbench import safe_io
from shiftbench.datasets import load
from shiftbench.datasets import metashift as ms
from shiftbench.datasets import wilds as wilds_adapter
from shiftbench.errors import ShiftbenchError
from shiftbench.safe_io import restricted_load, safe_extract

sys.path.insert(0, str(Path(__file__).parent))
import metashift_fixtures  # noqa: E402


# ---- restricted unpickler ------------------------------------------------------------------------

class _RunsShell:
    """Unpickling this calls ``os.system(command)``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Thing:
    """An ordinary class: its instances pickle by naming the class."""


def test_real_metashift_meta_data_loads(tmp_path):
    subsets = metashift_fixtures.build(tmp_path, images=False)
    loaded = restricted_load(tmp_path / ms.SUBSETS_FILE)
    assert isinstance(loaded, defaultdict) and loaded.default_factory is set and loaded == subsets
    assert ms.load_subsets(tmp_path / ms.SUBSETS_FILE) == subsets


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("content", [defaultdict(set, {"cat(sofa)": {"1", "2"}}), {"cat(sofa)": frozenset({"1"})},
                                     {"k": [1, 2.5, -3, None, True, False, "s", (1, ("t",)), {"n": {}}]}])
def test_plain_data_loads_in_every_protocol(tmp_path, protocol, content):
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    assert restricted_load(path) == content


def test_a_pickle_that_runs_a_command_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"cat(sofa)": _RunsShell(f"touch {shlex.quote(str(marker))}")})
    path = tmp_path / ms.SUBSETS_FILE
    path.write_bytes(payload)
    with pytest.raises(ShiftbenchError, match=rf"refusing to unpickle {path}: it names the global posix\.system"):
        restricted_load(path)
    assert not marker.exists()
    (tmp_path / ms.IMAGE_FOLDER).mkdir(parents=True)
    with pytest.raises(ShiftbenchError, match=r"^refusing to unpickle .*full-candidate-subsets\.pkl: .*posix\.system"):
        load("metashift/catdog-d0.44", root_dir=str(tmp_path))
    assert not marker.exists()
    pickle.loads(payload)  # the control: plain pickle runs the payload
    assert marker.exists()


@pytest.mark.parametrize("payload,name", [
    (b"c__builtin__\neval\n(S'1+1'\ntR.", "__builtin__.eval"),
    (b"cbuiltins\ngetattr\n(cbuiltins\nset\nS'add'\ntR.", "builtins.getattr"),
    (pickle.dumps(_Thing(), protocol=0), "copy_reg._reconstructor"),
    (pickle.dumps(_Thing()), f"{__name__}._Thing"),
    (pickle.dumps(shutil.rmtree), "shutil.rmtree"),
])
def test_every_other_global_is_refused(tmp_path, payload, name):
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(ShiftbenchError, match=f"names the global {name.replace('.', '[.]')};"):
        restricted_load(path)


# ---- archives ------------------------------------------------------------------------------------

def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", data: bytes = b"") -> tuple:
    member = tarfile.TarInfo(name)
    member.type, member.linkname, member.size = kind, linkname, len(data)
    return member, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def _tar(path: Path, members: list[tuple], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for member, data in members:
            tar.addfile(member, data)
    return path


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def sandbox(tmp_path) -> Path:
    """A folder holding only the archives; extraction targets ``sandbox/target``, so ``..`` lands in it."""
    folder = tmp_path / "sandbox"
    folder.mkdir()
    return folder


BAD_TARS = {
    "dotdot": ([_info("ok.txt", data=b"ok"), _info("../evil", data=b"x")], "'../evil' leads outside"),
    "nested dotdot": ([_info("a/b/../../../evil", data=b"x")], "'a/b/../../../evil' leads outside"),
    "symlink out": ([_info("link", tarfile.SYMTYPE, "../outside")], "'link' is a symbolic link to '../outside'"),
    "absolute symlink": ([_info("link", tarfile.SYMTYPE, "/etc")], "'link' is a symbolic link to '/etc'"),
    "through a symlink": ([_info("here", tarfile.SYMTYPE, "."), _info("here/../evil", data=b"x")],
                          "'here/../evil' leads outside"),
    "symlink moved later": ([_info("a", tarfile.SYMTYPE, "b/.."), _info("b", tarfile.SYMTYPE, ".")],
                            "'a' is a symbolic link to 'b/..'"),
    "hard link out": ([_info("hard", tarfile.LNKTYPE, "../outside")], "'hard' is a hard link to '../outside'"),
    "device": ([_info("dev", tarfile.CHRTYPE)], "'dev' is a device file or FIFO"),
    "fifo": ([_info("fifo", tarfile.FIFOTYPE)], "'fifo' is a device file or FIFO"),
}


@pytest.mark.parametrize("case", BAD_TARS)
def test_tar_members_outside_the_target_are_refused_and_nothing_is_written(sandbox, case):
    members, reason = BAD_TARS[case]
    archive = _tar(sandbox / "bad.tar", members)
    with pytest.raises(ShiftbenchError, match=rf"^refusing to extract {archive}: member {reason}"):
        safe_extract(archive, sandbox / "target")
    assert _tree(sandbox) == ["bad.tar"]


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_with_an_absolute_member_is_refused_in_every_compression(sandbox, tmp_path, mode):
    outside = tmp_path / "absolute_evil"
    archive = _tar(sandbox / "bad.tar", [_info("ok.txt", data=b"ok"), _info(str(outside), data=b"x")], mode)
    with pytest.raises(ShiftbenchError, match=f"member '{outside}' has an absolute path; nothing was extracted"):
        safe_extract(archive, sandbox / "target")
    assert _tree(sandbox) == ["bad.tar"] and not outside.exists()


def test_tar_through_a_link_already_on_disk_is_refused(sandbox, tmp_path):
    (sandbox / "target").mkdir()
    (sandbox / "target" / "escape").symlink_to(tmp_path)
    archive = _tar(sandbox / "bad.tar", [_info("escape/evil", data=b"x")])
    with pytest.raises(ShiftbenchError, match="member 'escape/evil' leads outside"):
        safe_extract(archive, sandbox / "target")
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_good_tar_extracts_with_its_inner_links(sandbox, mode):
    archive = _tar(sandbox / "good.tar", [
        _info("data", tarfile.DIRTYPE), _info("data/a.txt", data=b"alpha"), _info("data/sub/b.txt", data=b"beta"),
        _info("latest", tarfile.SYMTYPE, "data/sub"), _info("data/sub/up", tarfile.SYMTYPE, "../a.txt"),
        _info("data/copy.txt", tarfile.LNKTYPE, "data/a.txt"), _info("latest/c.txt", data=b"gamma"),
    ], mode)
    target = sandbox / "target"
    safe_extract(archive, target)
    assert (target / "data" / "a.txt").read_bytes() == b"alpha" == (target / "data" / "copy.txt").read_bytes()
    assert (target / "latest").is_symlink() and (target / "data" / "sub" / "c.txt").read_bytes() == b"gamma"
    assert (target / "data" / "sub" / "up").read_bytes() == b"alpha"
    assert _tree(sandbox) == ["good.tar", "target", *(f"target/{p}" for p in _tree(target))]


def _zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.writestr(name, b"content of " + name.encode())
    return path


@pytest.mark.parametrize("names,bad", [(["ok.txt", "../evil"], "../evil"), (["a/../../evil"], "a/../../evil"),
                                       (["ok.txt", "/tmp/shiftbench_zip_evil"], "/tmp/shiftbench_zip_evil")])
def test_zip_members_outside_the_target_are_refused_and_nothing_is_written(sandbox, names, bad):
    archive = _zip(sandbox / "bad.zip", names)
    with pytest.raises(ShiftbenchError, match=f"^refusing to extract {archive}: member '{bad}' "):
        safe_extract(archive, sandbox / "target")
    assert _tree(sandbox) == ["bad.zip"] and not Path("/tmp/shiftbench_zip_evil").exists()


def test_good_zip_extracts(sandbox):
    archive = _zip(sandbox / "good.zip", ["top.txt", "dir/", "dir/inner/x.csv"])
    safe_extract(archive, sandbox / "target")
    assert _tree(sandbox / "target") == ["dir", "dir/inner", "dir/inner/x.csv", "top.txt"]
    assert (sandbox / "target" / "dir" / "inner" / "x.csv").read_bytes() == b"content of dir/inner/x.csv"


def test_a_file_that_is_no_archive_is_refused(sandbox):
    (sandbox / "notes.txt").write_text("hello")
    with pytest.raises(ShiftbenchError, match="notes.txt: not a tar or zip archive"):
        safe_extract(sandbox / "notes.txt", sandbox / "target")


def test_command_line_extracts_or_prints_one_error_line(sandbox, capsys):
    good = _tar(sandbox / "good.tar", [_info("a.txt", data=b"a")])
    assert safe_io.main([str(good), str(sandbox / "target")]) == 0 and (sandbox / "target" / "a.txt").exists()
    bad = _tar(sandbox / "bad.tar", [_info("../evil", data=b"x")])
    assert safe_io.main([str(bad), str(sandbox / "other")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shiftbench: error: refusing to extract") and err.count("\n") == 1
    assert not (sandbox / "evil").exists() and not (sandbox / "other").exists()


# ---- the WILDS downloader extracts through safe_extract ------------------------------------------

@pytest.fixture
def wilds_download(monkeypatch):
    """``wilds.get_dataset(download=True)`` for civilcomments running wilds' real download code (its
    ``initialize_data_dir``, which prints and swallows downloader errors, and ``download_and_extract_archive``)
    with the network fetch replaced by copying the archive the test names."""
    from wilds.datasets import download_utils
    from wilds.datasets.civilcomments_dataset import CivilCommentsDataset

    served: list[Path] = []

    def fetch(url, root, filename=None, md5=None, size=None):
        os.makedirs(root, exist_ok=True)
        shutil.copy(served[0], os.path.join(root, filename))

    def get_dataset(dataset, root_dir, download, unlabeled=False, **kwargs):
        ds = object.__new__(CivilCommentsDataset)
        ds._version = "1.0"
        data_dir = Path(ds.initialize_data_dir(root_dir, download))
        (data_dir / "all_data_with_identities.csv").stat()  # the constructor reads it next

    monkeypatch.setattr(download_utils, "download_url", fetch)
    monkeypatch.setattr(wilds_adapter.import_wilds(), "get_dataset", get_dataset)
    return served


def test_wilds_download_refuses_an_archive_escaping_its_folder(tmp_path, wilds_download, capsys):
    from wilds.datasets import download_utils

    original = download_utils.extract_archive
    wilds_download.append(_tar(tmp_path / "served.tar.gz", [_info("../../evil", data=b"x")], "w:gz"))
    with pytest.raises(ShiftbenchError, match=r"^refusing to extract .*civilcomments_v1\.0/archive\.tar\.gz: "
                                              r"member '\.\./\.\./evil' leads outside"):
        wilds_adapter.download("civilcomments", tmp_path / "data")
    assert not (tmp_path / "evil").exists() and download_utils.extract_archive is original
    assert "Exception:" in capsys.readouterr().out  # wilds swallowed the refusal; download() raised it


def test_wilds_download_extracts_a_good_archive_and_removes_it(tmp_path, wilds_download):
    wilds_download.append(_tar(tmp_path / "served.tar.gz", [_info("RELEASE_v1.0.txt", data=b""),
                                                            _info("all_data_with_identities.csv", data=b"id\n")],
                               "w:gz"))
    data_dir = wilds_adapter.download("civilcomments", tmp_path / "data")
    assert _tree(data_dir) == ["RELEASE_v1.0.txt", "all_data_with_identities.csv"]
