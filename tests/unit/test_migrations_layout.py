"""Every SQL migration has its Alembic revision, chained in file order."""

from __future__ import annotations

import ast

from persistence.migrate import ALEMBIC_DIR, discover


def test_each_sql_file_has_a_revision_in_order() -> None:
    migrations = discover()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    revisions = sorted((ALEMBIC_DIR / "versions").glob("*.py"))
    assert [p.stem for p in revisions] == [m.name for m in migrations]
    prev = None
    for p, m in zip(revisions, migrations, strict=True):
        values = {
            t.id: ast.literal_eval(n.value)
            for n in ast.parse(p.read_text()).body
            if isinstance(n, ast.Assign) and not isinstance(n.value, ast.Call)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        assert values == {"revision": f"{m.version:04d}", "down_revision": prev}, p.name
        assert f'sql_step("{m.name}")' in p.read_text()
        prev = f"{m.version:04d}"
