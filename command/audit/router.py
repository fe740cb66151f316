"""HTTP for the audit log: reading it (auditors) and verifying its chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from command.audit.schemas import AuditPage, AuditRead, AuditVerifyRead
from core import audit, audit_verify
from core.changes import keyring
from core.query import page_body, paginate
from core.security import require
from core.web import PageDep, PrincipalDep, SessionDep, SettingsDep, TextFilter

router = APIRouter(prefix="/api")


@router.get("/audit", response_model=AuditPage, tags=["audit"])
def list_audit(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    entity: Annotated[TextFilter, Query(max_length=40)] = None,
    entity_id: Annotated[TextFilter, Query(max_length=80)] = None,
) -> dict[str, Any]:
    """The audit log, newest first, for auditors."""
    require(principal, "audit.read")
    stmt = select(audit.AuditEvent).order_by(audit.AuditEvent.id.desc())
    if entity is not None:
        stmt = stmt.where(audit.AuditEvent.entity == entity)
    if entity_id is not None:
        stmt = stmt.where(audit.AuditEvent.entity_id == entity_id)
    result = paginate(session, stmt, limit=page.limit, offset=page.offset)
    return page_body(result, lambda row: {c: getattr(row, c) for c in AuditRead.model_fields})


@router.get("/audit/verify", response_model=AuditVerifyRead, tags=["audit"])
def verify_audit(
    session: SessionDep, principal: PrincipalDep, settings: SettingsDep
) -> dict[str, Any]:
    """Check the whole audit chain: every link, and every checkpoint of this chain in
    EMERGENCY_AUDIT_CHECKPOINT_DIR (so rows cut from the end are found). Names every bad
    row (the first 1,000); changes not sealed yet are counted as pending, not as bad."""
    require(principal, "audit.read")
    report = audit_verify.verify(
        session, keyring(settings), checkpoint_dir=settings.audit_checkpoint_dir
    )
    return report.as_dict()
