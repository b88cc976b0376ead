"""The ``glave`` command line a task runs: identical for a local subprocess and a pod.

Pure functions, no Airflow: the operators, ``glave render-pods`` and the tests share them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Where a pod writes the small JSON result that Airflow reads back as the task's XCom.
POD_RESULT_FILE = "/airflow/xcom/return.json"


def _present(value: object) -> bool:
    # A rendered template of an unset param reads "None" or ""; both mean "leave the flag out".
    return value is not None and str(value).strip() not in ("", "None")


@dataclass(frozen=True)
class GlaveCommand:
    """``glave <subcommand...> --run-id R [--shard K] [--config C] [--store S] [options...]``."""

    subcommand: tuple[str, ...]
    run_id: str
    shard: int | str | None = None  # a str before templating renders (a mapped shard)
    config_uri: str | None = None
    store_uri: str | None = None
    options: Mapping[str, object] = field(default_factory=dict)  # "--flag": value (None: omitted)
    flags: tuple[str, ...] = ()  # value-less switches such as "--json"

    def argv(self, result_file: str | None = None) -> list[str]:
        out = ["glave", *self.subcommand, "--run-id", str(self.run_id)]
        if _present(self.shard):
            out += ["--shard", str(self.shard)]
        if _present(self.config_uri):
            out += ["--config", str(self.config_uri)]
        if _present(self.store_uri):
            out += ["--store", str(self.store_uri)]
        for flag, value in self.options.items():
            if str(value) == "True":  # a rendered boolean param switches a value-less flag on
                out.append(flag)
            elif _present(value) and str(value) != "False":
                out += [flag, str(value)]
        out += list(self.flags)
        if result_file:
            out += ["--result-file", result_file]
        return out
