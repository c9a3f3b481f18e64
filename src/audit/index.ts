export { AuditCollector, AuditGroup, type AuditTarget } from './collector.js';
export { PATIENT_ROWS_FILTER, auditEntries, auditEventFromRow, auditEventId, chainHash, operationHash, payloadDigest, type StoredAuditEvent, type AuditAction, type AuditEventRecord, type FieldOutcome, type FieldRecord, type RequestFacts } from './events.js';
export { DatabaseAuditStore, type AuditStore } from './store.js';
export { verifyAuditChain, type ChainProblem, type ChainReport } from './verify.js';
export { auditFieldAccess } from './field-access.js';
export { AUDIT_UNAVAILABLE, FORWARDED_OPERATION_HASH, FORWARDED_OPERATION_NAME, auditPlugin, type AuditMetrics, type AuditWatch, type AuditedContext } from './plugin.js';
export { ensureAuditRetention, purgeExpiredAudit, type PurgeResult } from './retention.js';
export { AUDIT_EXPORT_FORMATS, DEFAULT_EXPORT_PAGE_SIZE, exportAuditEvents, exportAuditLines, fieldOutcomeText, formatAuditEvent, toFhirAuditEvent, toNdjson, type AuditExportFormat, type AuditExportRange, type ExportedAuditEvent, type FhirAuditEvent } from './export.js';
export { DEFAULT_ALERT_THRESHOLDS, alertEvent, logAlerts, watchAccess, type Alert, type AlertKind, type AlertThresholds } from './alerts.js';
