"""Loaded at start-up by Python subprocesses whose PYTHONPATH includes this folder.

vLLM inspects model classes and runs its engine core in child processes; where torchvision's C
extension cannot load (a CPU build of torch beside the CUDA-linked torchvision wheel) those
children need the same ``torchvision::nms`` fallback as the parent. The decision is the parent's
too: ``ensure_torchvision_ops`` imports torchvision first and registers nothing where its own
operators load (GPU images), so a child never registers them twice.

It runs when the child first imports torchvision, not at start-up: most children never do
(inductor's compile probes, multiprocessing's resource tracker), and importing torch costs each of
them about three seconds of CPU.
"""

import sys
from collections.abc import Sequence
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from importlib.util import find_spec
from types import ModuleType


class _TorchvisionWithFallback(Loader):
    """Stands in for torchvision's own loader once: ``ensure_torchvision_ops`` does the real import
    (and registers the fallback where it must); the import system then returns the module that
    import left in ``sys.modules``."""

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # a placeholder module, replaced below

    def exec_module(self, module: ModuleType) -> None:
        if _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)  # once: the nested import goes to the ordinary finders
        del sys.modules["torchvision"]  # the placeholder: the nested import must find nothing
        from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops

        ensure_torchvision_ops()


class _OnFirstTorchvisionImport(MetaPathFinder):
    """Answers for ``torchvision`` with the real package's location and the loader above. It stays
    in place until a real import runs it: libraries probe with ``importlib.util.find_spec`` first."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != "torchvision":
            return None
        real = self._real_spec(fullname, path, target)
        if real is None or find_spec("torch") is None or find_spec("glave_tasks") is None:
            return real  # not installed, nothing to patch, or no shim to patch with: as is
        spec = ModuleSpec("torchvision", _TorchvisionWithFallback(), origin=real.origin, is_package=True)
        spec.submodule_search_locations = real.submodule_search_locations
        spec.has_location = real.has_location
        return spec

    def _real_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None) -> ModuleSpec | None:
        """What the finders after this one answer (the installed package)."""
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec: ModuleSpec | None = finder.find_spec(fullname, path, target)
                if spec is not None:
                    return spec
        return None


_FINDER = _OnFirstTorchvisionImport()
sys.meta_path.insert(0, _FINDER)
