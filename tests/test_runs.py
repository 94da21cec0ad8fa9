"""Run folders: PROJECT/NAME, then NAME2, NAME3, ... (the first free one); --exist-ok reuses PROJECT/NAME."""
import pytest

from jitvision.errors import OutputError
from jitvision.runs import new_run_dir


def test_run_folders_are_numbered_from_the_first_free_one(tmp_path):
    project = tmp_path / "runs" / "train"
    assert [new_run_dir(project).name for _ in range(3)] == ["exp", "exp2", "exp3"]
    (project / "exp2").rmdir()
    assert new_run_dir(project) == project / "exp2"
    assert new_run_dir(project, "exp", exist_ok=True) == project / "exp"
    assert new_run_dir(project, "fine", exist_ok=True) == project / "fine"  # created when missing
    assert new_run_dir(project, "fine") == project / "fine2"


def test_an_unwritable_project_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="cannot create the run folder"):
        new_run_dir(tmp_path / "file")
