"""The stages, in the order of the method. Read the modules in this order to follow one video
from raw file to published record: ingest -> track -> caption -> bridge -> qa -> validate.

The stage classes are the single truth about the pipeline: this registry gives their order, and
each class declares its upstream stages (``needs``), its output tables (``outputs``), its image
family, resources, timeout and the config sections that shape its output. Everything else (the
table owners, the DAG, pod manifests, status, report, export, MLflow, re-runs) derives from them.
Adding a stage is its module, one line here and its test.
"""

from __future__ import annotations

import functools
import importlib

from ..config import GlaveConfig
from ..contract import Stage
from ..errors import GlaveError

# Pipeline order, one "module:Class" per stage. Stage modules import heavy libraries only inside
# their methods, so importing every class here is cheap (the Airflow side does it too).
REGISTRY: list[str] = [
    "glave_tasks.stages.ingest:IngestStage",
    "glave_tasks.stages.track:TrackStage",
    "glave_tasks.stages.caption:CaptionStage",
    "glave_tasks.stages.bridge:BridgeStage",
    "glave_tasks.stages.qa:QAStage",
    "glave_tasks.stages.validate:ValidateStage",
]


@functools.cache
def _classes(registry: tuple[str, ...]) -> dict[str, type[Stage]]:
    out: dict[str, type[Stage]] = {}
    owners: dict[str, str] = {}
    for target in registry:
        module, attr = target.split(":")
        cls: type[Stage] = getattr(importlib.import_module(module), attr)
        if cls.name in out:
            raise GlaveError(f"stage {cls.name!r} is registered twice")
        for need in cls.needs:
            if need not in out:
                raise GlaveError(f"stage {cls.name!r} needs {need!r}, which is not registered before it")
        for table in cls.outputs:
            if table in owners:
                raise GlaveError(f"table {table!r} is written by both {owners[table]!r} and {cls.name!r}")
            owners[table] = cls.name
        out[cls.name] = cls
    return out


def stage_classes() -> dict[str, type[Stage]]:
    """Every registered stage class by name, in pipeline order."""
    return _classes(tuple(REGISTRY))


def available() -> list[str]:
    """Stage names in pipeline order."""
    return list(stage_classes())


def stage_class(name: str) -> type[Stage]:
    classes = stage_classes()
    if name not in classes:
        raise GlaveError(f"unknown stage {name!r}; stages: {', '.join(classes)}")
    return classes[name]


def build_stage(name: str, config: GlaveConfig) -> Stage:
    return stage_class(name)(config)


def table_owners() -> dict[str, str]:
    """Which stage writes which table, in pipeline order (every table has an Arrow schema)."""
    from ..schemas import TABLES  # Arrow: not needed by those who only ask for names (the DAG)

    owners = {table: cls.name for cls in stage_classes().values() for table in cls.outputs}
    for table, stage in owners.items():
        if table not in TABLES:
            raise GlaveError(f"stage {stage!r} writes {table!r}, which has no schema in schemas.TABLES")
    return owners


def from_stage(name: str) -> list[str]:
    """``name`` and every stage after it, in pipeline order."""
    names = available()
    stage_class(name)
    return names[names.index(name):]


def config_sections() -> list[str]:
    """Config sections that shape some stage's output, in pipeline order of first use."""
    out: list[str] = []
    for cls in stage_classes().values():
        out += [s for s in cls.config_sections if s not in out]
    return out
