"""Audit an FNO through an SAE: error attribution to concepts, off-distribution scores against
baselines, and the concepts a distribution shift moves.

``saeno.audit(sae, train_store, stores, model=...)`` runs :func:`saeno.audit.core.audit`: the package
itself is callable, so ``saeno.audit(...)`` and ``saeno.audit.audit(...)`` are the same function while
``saeno.audit.AuditResult`` and the sub-modules stay reachable.
"""

import sys
import types

from saeno.audit.core import AuditError, AuditResult, StoreAudit, audit, load_audit

__all__ = ["AuditError", "AuditResult", "StoreAudit", "audit", "load_audit"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
