"""README.md stays in step with the project: its plugin table lists every plugin package."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_plugin_table_lists_every_plugin_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Plugins"):readme.index("## Documentation")]
    packages = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
    assert packages, "no plugin packages found"
    missing = [name for name in packages if f"| `plugins/{name}` |" not in table]
    assert not missing, f"README.md's plugin table leaves out {', '.join(missing)}"
