"""Run-file I/O: error messages that name the path and the space, readable modes."""

import os
import stat

from saw.core.io import explain_write_error, make_readable


def test_write_errors_name_the_path_and_the_free_space(tmp_path):
    err = explain_write_error(RuntimeError("[enforce fail at inline_container.cc] unexpected pos 64"), tmp_path / "ckpt")
    text = str(err)
    assert str(tmp_path / "ckpt") in text and "GiB free there" in text and "unexpected pos 64" in text
    assert isinstance(err, OSError)


def test_make_readable_applies_the_umask(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir(mode=0o700)
    (folder / "model.safetensors").write_bytes(b"x")
    os.chmod(folder / "model.safetensors", 0o600)
    old = os.umask(0o022)
    try:
        make_readable(folder)
    finally:
        os.umask(old)
    assert stat.S_IMODE((folder / "model.safetensors").stat().st_mode) == 0o644
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
