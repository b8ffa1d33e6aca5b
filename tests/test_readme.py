"""The README's walkthrough is a script: this test takes the ```bash block after the
`<!-- walkthrough` comment in README.md as it is and runs it with bash, `.venv/bin` first on
PATH, against a platform of its own on a fresh data directory (SQLite), in an empty folder with
an empty HOME. The README cannot rot without this test failing.

It also keeps the README's promises about itself: its first lines are the two commands, and the
places it names (the guide's folders, `kqi` after set-up) exist.
"""
from __future__ import annotations

import os
import re
import subprocess
import zipfile

import pytest

from .platform import VENV_BIN, new_platform, remove_tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
MARKER = "<!-- walkthrough"


def readme() -> str:
    with open(README, encoding="utf-8") as f:
        return f.read()


def walkthrough(text: str) -> str:
    """The first ```bash block after the walkthrough marker (exactly one marker)."""
    assert text.count(MARKER) == 1, f"README.md needs exactly one {MARKER!r} comment"
    after = text[text.index(MARKER):]
    m = re.search(r"^```bash\n(.*?)^```$", after, re.S | re.M)
    assert m, "no ```bash block after the walkthrough marker"
    return m.group(1)


def test_readme_starts_with_the_two_commands():
    lines = readme().splitlines()
    assert lines[0] == "# KQI Hub"
    block = "\n".join(lines[1:12])
    assert "bash setup.sh && .venv/bin/kqi-hub" in block
    assert "bash setup.sh --test && .venv/bin/python -m pytest" in block
    # the guide it points at is there
    for lang in ("en", "ja"):
        assert os.path.isfile(os.path.join(ROOT, "docs", lang, "index.md"))
    assert "/services/kqi/docs/" in readme()


def test_kqi_cli_is_installed_by_plain_setup():
    """`bash setup.sh` (run mode) installs `.[]` without the test extras: kqi must come with it."""
    import ast

    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    requires = next(k.value for k in call.keywords if k.arg == "install_requires")
    names = [ast.literal_eval(e) for e in requires.elts]
    assert any(n.startswith("kamonohashi-cli") for n in names), names
    assert any(n.startswith("mkdocs") for n in names), names
    assert os.access(os.path.join(VENV_BIN, "kqi"), os.X_OK)


@pytest.mark.parametrize("language", ["en", "ja"])
def test_the_guide_builds_strictly(tmp_path, language):
    """The guide the README names builds with MkDocs in strict mode (a broken link or a missing
    picture fails), with the same pages in both languages, and each picture a PNG of at most 150 KB."""
    site = tmp_path / "site"
    result = subprocess.run([os.path.join(VENV_BIN, "mkdocs"), "build", "--strict",  # not --quiet: it hides the warnings strict counts
                             "-f", os.path.join(ROOT, "docs", f"mkdocs.{language}.yml"), "-d", str(site)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    pages = sorted(n for n in os.listdir(os.path.join(ROOT, "docs", language)) if n.endswith(".md"))
    assert pages == sorted(n for n in os.listdir(os.path.join(ROOT, "docs", "en")) if n.endswith(".md"))
    for page in pages:
        built = site / ("index.html" if page == "index.md" else page[:-3] + "/index.html")
        assert built.is_file(), built
    assert 'lang="%s"' % language in (site / "index.html").read_text()
    assert 'id="datasets"' in (site / "data" / "index.html").read_text()  # the home page links data/#datasets
    assert "cdnjs" not in (site / "index.html").read_text()  # nothing fetched from elsewhere
    pictures = os.listdir(os.path.join(ROOT, "docs", language, "img"))
    assert {"home.png", "data.png", "training.png"} <= set(pictures)
    for name in pictures:
        with open(os.path.join(ROOT, "docs", language, "img", name), "rb") as f:
            data = f.read()
        assert data.startswith(b"\x89PNG") and len(data) <= 150 * 1024, name


@pytest.fixture
def fresh_platform(tmp_path):
    plat = new_platform(str(tmp_path / "platform"))
    plat.start(timeout=120)
    yield plat
    plat.stop()
    remove_tree(str(tmp_path / "platform"))


def test_walkthrough_runs_as_written(fresh_platform, tmp_path, artifacts_dir):
    script = walkthrough(readme())
    work = tmp_path / "work"
    home = tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KQI_", "JUPYTERHUB_", "GIT_"))}
    env.update(
        PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        HOME=str(home),
        KQI_URL=fresh_platform.url,
        KQI_ADMIN_PASSWORD=fresh_platform.admin_password,
    )
    result = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
                            timeout=900)
    with open(os.path.join(artifacts_dir, "readme-walkthrough.log"), "w") as f:
        f.write(f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    assert result.returncode == 0, (f"the README's walkthrough failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                                    f"{result.stderr[-4000:]}\n--- platform\n{fresh_platform.log_tail(30)}")
    out = work / "kqi-walkthrough"
    # what the walkthrough shows and leaves: the pushed repository, the job's log and output
    assert "train.py" in result.stdout and "a first model" in result.stdout
    assert "training 1: Completed" in result.stdout
    log = (out / "out" / "training_stdout_stderr_1.log").read_text()
    assert "training 1 a.txt cat" in log and "training 1 b.txt dog" in log, log
    with zipfile.ZipFile(out / "out" / "output.zip") as z:
        assert z.read("model.txt") == b"trained on dataset 1\n"
    # the repository the walkthrough pushed is on the embedded git server of the tenant sandbox
    bare = os.path.join(fresh_platform.data_dir, "git", "sandbox", "admin", "model.git")
    shown = subprocess.run(["git", "--git-dir", bare, "show", "main:train.py"], capture_output=True, text=True)
    assert shown.returncode == 0 and "/kqi/output/model.txt" in shown.stdout
