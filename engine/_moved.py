"""The engine's module paths before it had rooms (issue 27), kept importable.

``import ivig_advisor.engine.render`` gives the very module ``ivig_advisor.engine.output.render``
(one module object under two names, so a patch through either reaches both), without a file
for each old name in the tree. Three old names are rooms now (``batch``, ``audit``,
``service``); ``batch`` re-exports what the README documented of it."""

import importlib
import importlib.abc
import importlib.util
import sys

PACKAGE = __name__.rpartition(".")[0]

MOVED = {
    "errors": "base.errors",
    "yamlsrc": "base.yamlsrc",
    "escape": "base.escape",
    "atomic": "base.atomic",
    "stdio": "base.stdio",
    "words": "core.words",
    "conditions": "core.conditions",
    "schema": "core.schema",
    "rulebase": "core.rulebase",
    "compiler": "core.compiler",
    "_experta": "core._experta",
    "analysis": "core.analysis",
    "evaluate": "core.advisor",
    "situations": "core.cache.situations",
    "support": "core.cache.support",
    "caseio": "io.cases",
    "fhir": "io.fhir.resources",
    "fhirmap": "io.fhir.mapping",
    "fhirio": "io.fhir.bundles",
    "fhirtext": "io.fhir.text",
    "render": "output.render",
    "dask_bag": "batch.dask_bag",
    "interview": "clinician.interview",
    "console": "clinician.console",
    "audit_text": "audit.text",
    "report": "audit.report",
    "verify": "audit.check",
    "signoff": "audit.signoff",
    "scenarios": "audit.scenarios",
    "cdshooks": "service.cdshooks",
    "cards": "service.cards",
    "jwtauth": "service.jwtauth",
    "feedback": "service.feedback",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and loads it as the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != PACKAGE or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(f"{PACKAGE}.{MOVED[spec.name.rpartition('.')[2]]}")
        spec.loader_state = module.__spec__  # the import system is about to stamp the old name's on it
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # its own spec back


def install() -> None:
    """Let the old module paths be imported (once per interpreter)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
