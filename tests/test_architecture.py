"""The rules of docs/architecture.md that a test can hold.

One writer of remote ids: records.changes. Nothing else in the app writes RemoteId, Batch or
BatchChange rows, neither through the ORM, nor through the engine's door, nor in raw SQL.

Layers one way: each app imports only from its own layer or the ones below it, and none imports
config.
"""

import ast
import re
from pathlib import Path

import pytest
from django.apps import apps

from records.models import Batch, BatchChange, RemoteId, WriteOutsideEngine, writing
from tests.factories import RecordFactory, make_reference

ROOT = Path(__file__).resolve().parent.parent
APP_DIRS = ["config", "integrations", "records", "references", "common", "demo"]
# The engine: the records/changes/ package, and the models and counts it writes through.
ENGINE_PACKAGE = "records/changes/"
ENGINE = {"records/counts.py", "records/models.py"}
# "Functions stay short" is ruff's (C90, PLR0915); modules of the engine stay small here.
MAX_ENGINE_MODULE_LINES = 300
GUARDED = {"RemoteId", "Batch", "BatchChange", "ReferenceCount"}
WRITE_VERBS = {
    "create",
    "bulk_create",
    "bulk_update",
    "get_or_create",
    "update_or_create",
    "update",
    "delete",
    "save",
}
# Bottom to top: an app may import its own layer and those before it in this list, never one
# after it. config sits beside the layers: it wires them together (settings, urls, middleware)
# and may import any of them, while no app imports config (settings come from django.conf).
LAYERS = ["common", "integrations", "records", "references", "demo"]
BESIDE = "config"
RAW_WRITE = re.compile(
    r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY|TRUNCATE)\s+\"?records_(remoteid|batch|batchchange|referencecount)\b",
    re.IGNORECASE,
)


# Modules outside the engine that name a guarded table in raw SQL to read it, and why. Each
# must still do so (the list never goes stale), and only these may.
READS_GUARDED_TABLES = {
    "records/locks.py": "locks the tabs' count rows (SELECT ... FOR UPDATE / FOR KEY SHARE)",
    "records/bodies.py": "reads records with their remote ids as the API's JSON bodies",
    "references/reconcile.py": "joins remote ids to compare an uploaded export with the links",
    "references/import_uploads.py": "reads remote ids to find the lines planned together",
}
TABLE_NAMERS = {"_table", "quote_name"}
GUARDED_TABLE = re.compile(r'^"?records_(remoteid|batch|batchchange|referencecount)"?$')
# Far fewer than the app has: a scan that read less than this read the wrong place.
AT_LEAST_MODULES = 60


def app_modules():
    for folder in APP_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            in_engine = relative in ENGINE or relative.startswith(ENGINE_PACKAGE)
            if "/migrations/" not in relative and not in_engine:
                yield relative, path.read_text(encoding="utf-8")


def chain_root(node):
    """The name a call chain starts from: RemoteId in RemoteId.objects.filter(...).delete()."""
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        else:
            return node.id if isinstance(node, ast.Name) else None


def writes_outside_the_engine(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITE_VERBS
            and chain_root(node.func.value) in GUARDED
        ):
            found.append(f"line {node.lineno}: {chain_root(node.func.value)}...{node.func.attr}()")
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "writing":
            found.append(f"line {node.lineno}: opens the engine's door (writing())")
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_text and (match := RAW_WRITE.search(node.value)):
            found.append(f"line {node.lineno}: raw SQL writes {match[0]}")
    return found


def scanned_modules() -> dict[str, str]:
    """Every module the scans read; fails when that is not the app (a moved folder, a wrong
    root), so a scan can never pass by reading nothing."""
    modules = dict(app_modules())
    assert len(modules) >= AT_LEAST_MODULES, f"the scan read {len(modules)} modules under {ROOT}"
    assert {"records/services.py", "references/views_table.py"} <= modules.keys()
    return modules


def test_no_module_but_the_engine_writes_remote_ids_batches_or_batch_changes():
    offenders = {
        module: found
        for module, source in scanned_modules().items()
        if (found := writes_outside_the_engine(source))
    }
    assert offenders == {}, "Write through records.changes (a change set) instead"


def _called_name(call: ast.Call) -> str | None:
    return getattr(call.func, "id", None) or getattr(call.func, "attr", None)


def _names_guarded_table(argument) -> bool:
    """`RemoteId` (as `_table(RemoteId)` takes it) or the literal table name."""
    if isinstance(argument, ast.Name):
        return argument.id in GUARDED
    return isinstance(argument, ast.Constant) and bool(GUARDED_TABLE.match(str(argument.value)))


def names_a_guarded_table(source: str) -> list[str]:
    """Where raw SQL gets a guarded table's name without writing it out (which RAW_WRITE
    catches): `_table(RemoteId)`, `RemoteId._meta.db_table`, `quote_name("records_batch")`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "db_table"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "_meta"
            and chain_root(node.value) in GUARDED
        ):
            found.append(f"line {node.lineno}: {chain_root(node.value)}._meta.db_table")
        elif (
            isinstance(node, ast.Call)
            and _called_name(node) in TABLE_NAMERS
            and node.args
            and _names_guarded_table(node.args[0])
        ):
            found.append(f"line {node.lineno}: {_called_name(node)}({ast.unparse(node.args[0])})")
    return found


def test_no_module_but_the_engine_names_a_guarded_table_in_raw_sql():
    naming = {
        module: found
        for module, source in scanned_modules().items()
        if (found := names_a_guarded_table(source))
    }
    offenders = {
        module: found for module, found in naming.items() if module not in READS_GUARDED_TABLES
    }
    assert offenders == {}, "Write through records.changes (a change set) instead"
    assert naming.keys() >= READS_GUARDED_TABLES.keys(), "READS_GUARDED_TABLES is out of date"


def test_the_scan_finds_each_way_to_name_a_guarded_table():
    source = (
        "f'DELETE FROM {_table(RemoteId)}'\n"
        "table = BatchChange._meta.db_table\n"
        "connection.ops.quote_name('records_batch')\n"
        "db_connection.ops.quote_name(ReferenceCount)\n"
    )
    assert len(names_a_guarded_table(source)) == 4
    harmless = "_table(Record)\nRecord._meta.db_table\nquote_name('records_record')\n"
    assert names_a_guarded_table(harmless) == []


def test_the_scan_finds_each_kind_of_write():
    """The scan above must be able to fail: each pattern it looks for is found."""
    source = (
        "RemoteId.objects.for_tenant(t).filter(x=1).delete()\n"
        "Batch.objects.create(kind='x')\n"
        "BatchChange.objects.bulk_create([])\n"
        "with writing():\n    pass\n"
        "cursor.execute('DELETE FROM records_remoteid WHERE id = 1')\n"
    )
    assert len(writes_outside_the_engine(source)) == 5
    assert writes_outside_the_engine("RemoteId.objects.filter(x=1).count()") == []


# --- the engine's layout ------------------------------------------------------------------------


def oversized_modules(folder: Path) -> dict[str, int]:
    sizes = {
        path.relative_to(folder).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in folder.rglob("*.py")
    }
    return {module: lines for module, lines in sizes.items() if lines > MAX_ENGINE_MODULE_LINES}


def action_dispatch(source: str) -> list[str]:
    """Comparisons of a change's action (`change.action == Action.X`, `action in (...)`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(item, ast.Attribute) and item.attr == "action" for item in operands):
                found.append(f"line {node.lineno}")
    return found


def test_the_engine_is_a_package_of_small_modules():
    package = ROOT / ENGINE_PACKAGE
    assert not (ROOT / "records" / "changes.py").exists()
    modules = sorted(path.relative_to(package).as_posix() for path in package.rglob("*.py"))
    for expected in ("types.py", "engine.py", "rules.py", "messages.py", "storage.py"):
        assert expected in modules
    assert oversized_modules(package) == {}, "Split the module by role"


def test_each_action_is_one_module_of_kinds_and_nothing_else_dispatches_on_it():
    from records.changes import Action
    from records.changes.kinds import KINDS

    assert set(KINDS) == set(Action)
    for action, kind in KINDS.items():
        assert type(kind).__module__ == f"records.changes.kinds.{action.value}"
    package = ROOT / ENGINE_PACKAGE
    offenders = {
        path.name: found
        for path in package.glob("*.py")
        if (found := action_dispatch(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, "Give the action's module under kinds/ a method instead"


def test_the_layout_checks_can_fail(tmp_path):
    (tmp_path / "big.py").write_text("x = 1\n" * (MAX_ENGINE_MODULE_LINES + 1))
    (tmp_path / "small.py").write_text("x = 1\n" * MAX_ENGINE_MODULE_LINES)
    assert oversized_modules(tmp_path) == {"big.py": MAX_ENGINE_MODULE_LINES + 1}
    source = "if change.action == Action.LINK:\n    pass\nok = line.action_label == 'x'\n"
    assert action_dispatch(source) == ["line 1"]
    assert action_dispatch("if line.change.action in (Action.LINK,):\n    pass\n") == ["line 1"]


@pytest.mark.django_db
class TestTheModelsRefuseWritesOutsideTheEngine:
    def test_create_update_delete_and_bulk_create_are_refused(self, world):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")
        rows = RemoteId.objects.filter(record=record)
        for write in (
            lambda: RemoteId.objects.create(
                tenant=world.tenant,
                record=RecordFactory(tenant=world.tenant),
                connection=world.shop,
                record_type="order",
                remote_id="X",
            ),
            lambda: rows.update(remote_ref="changed"),
            lambda: rows.delete(),
            lambda: rows.first().delete(),
            lambda: Batch.objects.create(tenant=world.tenant, kind="delete", actor="user/x"),
            lambda: BatchChange.objects.bulk_create([]),
        ):
            with pytest.raises(WriteOutsideEngine):
                write()
        assert rows.count() == 2

    def test_deleting_a_record_still_cascades_to_its_remote_ids(self, world):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")
        record.delete()
        assert not RemoteId.objects.exists()

    def test_the_door_is_closed_again_after_the_engine_writes(self, world):
        with writing():
            pass
        with pytest.raises(WriteOutsideEngine):
            RemoteId.objects.all().delete()


# --- layers ---------------------------------------------------------------------------------


def imported_modules(source: str):
    """(line, module) for every absolute import, those inside functions included (ast.walk).

    Relative imports are left out: they cannot leave their own top-level package.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def upward_imports(source: str, layer: str) -> list[str]:
    found = []
    for line, module in imported_modules(source):
        top = module.partition(".")[0]
        if top == BESIDE:
            found.append(f"line {line}: imports {module} (read settings through django.conf)")
        elif top in LAYERS and LAYERS.index(top) > LAYERS.index(layer):
            found.append(f"line {line}: imports {module} ({top} is above {layer})")
    return found


def test_every_app_imports_only_its_own_layer_or_below():
    offenders = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            if found := upward_imports(path.read_text(encoding="utf-8"), layer):
                offenders[path.relative_to(ROOT).as_posix()] = found
    assert offenders == {}, (
        "Move what is needed down a layer (often to common/), or the importer up"
    )


def test_every_app_of_ours_has_a_layer():
    ours = {app.label for app in apps.get_app_configs() if Path(app.path).resolve().parent == ROOT}
    # common is a plain package, not an app: nothing in it needs the app registry.
    assert ours | {"common"} == set(LAYERS), "Give a new app its layer here and in the docs"


def test_the_scan_finds_each_kind_of_upward_import():
    """The scan above must be able to fail: each kind of upward import is found."""
    source = (
        "from references.queries import reference_rows\n"
        "import demo.management.commands.seed_demo\n"
        "def lazily():\n    from records import counts\n"
        "from config.security import server_error\n"
        "import config.settings\n"
    )
    assert len(upward_imports(source, "integrations")) == 5
    allowed = (
        "from common.paging import paged\n"
        "from integrations import apikeys\n"
        "from .models import Tenant\n"
        "from django.conf import settings\n"
    )
    assert upward_imports(allowed, "integrations") == []
