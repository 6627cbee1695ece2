"""docs/adding-a-module.md, followed literally by a throwaway module.

The guide's last part is a complete module, `hello`: each file in a fenced block under its path. This
test copies the project (the files git knows, as they are in the work tree) into a temporary git
repository, writes exactly those files, runs the commands the guide gives (`harness generate`,
`harness list`, `harness run hello`) on a stack of its own (its own port offset and state dir), and
checks:

- the module added only its own files, and changed only the shared files the guide names
  (the generated blocks of compose.yaml and dashboards/prometheus/prometheus.yml);
- `harness generate --check` is clean afterwards, and the generated blocks name the new target;
- `harness run hello` exits 0 with its one claim held, measured.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "adding-a-module.md"
# **`path`** on its own line, a blank line, then a fenced block: a file of the complete module
FILE_BLOCK = re.compile(r"^\*\*`([^`]+)`\*\*\n\n```[\w-]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SHARED_GENERATED = {"compose.yaml", "dashboards/prometheus/prometheus.yml"}
PORT_OFFSET = "700"  # a stack of its own, beside the session's


def guide_files() -> dict[str, str]:
    section = GUIDE.read_text().partition("## A complete module")[2]
    files = dict(FILE_BLOCK.findall(section))
    assert files, "docs/adding-a-module.md has no complete module (**`path`** followed by a fenced block)"
    return files


def target_urls(line: str) -> dict:
    """The JSON of compose's `  HARNESS_TARGET_URLS: '{...}'` line."""
    return json.loads(line.split(": ", 1)[1].strip("'"))


def git(project: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(project), *args], capture_output=True, text=True, check=True)
    return done.stdout


def copy_project(destination: Path) -> None:
    """The files git knows (tracked, and new ones it does not ignore), as they are now, committed."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    git(destination, "init", "-q")
    git(destination, "add", "-A")
    git(destination, "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-q", "-m", "copy")


def harness(project: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update(HARNESS_PORT_OFFSET=PORT_OFFSET, HARNESS_STATE_DIR=str(project / ".harness"),
               PYTHONPATH=str(project))
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=project, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_the_guides_files_are_all_the_module_needs():
    files = guide_files()
    assert {"harness/modules/hello.py", "targets/hello/__init__.py", "targets/hello/settings.py",
            "targets/hello/main.py", "locustfiles/hello.py", "dashboards/hello.json"} <= set(files), sorted(files)
    assert all(path.split("/")[-1].removesuffix(".py").removesuffix(".json").removesuffix(".md") == "hello"
               or "/hello/" in path for path in files), sorted(files)
    text = GUIDE.read_text()
    for shared in SHARED_GENERATED:
        assert shared in text, f"the guide must name the shared file {shared}"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = tmp_path_factory.mktemp("new_module") / "p"
    project.mkdir()
    copy_project(project)
    for relative, content in guide_files().items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    yield project
    harness(project, "down", timeout=120)


def test_a_new_module_touches_only_its_own_files_and_the_generated_blocks(project):
    done = harness(project, "generate")
    assert done.returncode == 0, done.stdout + done.stderr
    changed = {line[3:] for line in git(project, "status", "--porcelain", "-uall").splitlines()}
    own = set(guide_files())
    assert changed - own <= SHARED_GENERATED, f"files outside the module's room changed: {sorted(changed - own)}"
    assert own <= changed, f"the module's files are missing: {sorted(own - changed)}"
    diff = git(project, "diff", "--", *SHARED_GENERATED)
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    # one line is rewritten, not removed: the JSON of HARNESS_TARGET_URLS, which gains the new target
    assert all(line.startswith("  HARNESS_TARGET_URLS: ") for line in removed), f"generating removed lines: {removed}"
    urls = [target_urls(line) for line in removed]
    (now,) = [target_urls(line) for line in (project / "compose.yaml").read_text().splitlines()
              if line.startswith("  HARNESS_TARGET_URLS: ")]
    assert all(old.items() <= now.items() for old in urls) and now.get("hello") == "http://hello:18199", now
    assert "hello:18199" in (project / "dashboards/prometheus/prometheus.yml").read_text()
    assert "\n  hello:\n" in (project / "compose.yaml").read_text()
    check = harness(project, "generate", "--check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_harness_run_on_the_new_module_passes(project):
    listed = harness(project, "list")
    assert listed.returncode == 0 and "hello" in listed.stdout, listed.stdout + listed.stderr
    done = harness(project, "run", "hello", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (project / "results" / "hello").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    (claim,) = run["claims"]
    assert claim["id"] == "no_wait_p50" and claim["status"] == "held", claim
    assert claim["measured"] is not None and claim["baseline"] is not None, claim


def test_the_guides_claim_follows_the_sentence_rule(tmp_path):
    """The guide's module is held to what every registered spec is (tests/unit/test_claim_sentences.py)."""
    source = guide_files()["harness/modules/hello.py"]
    namespace: dict = {}
    exec(compile(source.replace("from targets.hello.settings import Settings", "Settings = None"),
                 "hello.py", "exec"), namespace)
    for claim in namespace["SPEC"].claims:
        assert claim.threshold_phrase in claim.sentence, (claim.id, claim.threshold_phrase)
        assert all(variant in claim.sentence for variant in claim.variants), claim.id
