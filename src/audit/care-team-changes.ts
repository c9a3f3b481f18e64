import type { CareTeamRefusal } from './alerts.js';
import type { AuditCollector } from './collector.js';

/**
 * A change of care-team membership, as the audit trail keeps it. Adding a
 * practitioner to a care team gives that practitioner's accounts the team's
 * patients, so what came of each attempt is recorded, not only that the
 * role was allowed to try (the mutation's own event, field-access.ts): one
 * event per entity touched, the care team (CareTeam/<id>) and the
 * practitioner (Practitioner/<id>), action `update`, field
 * `CareTeam.members`, allowed, or denied with the refusal as its reason.
 * Either way an access alert is raised (alerts.ts). Ids only, no values.
 */
export const CARE_TEAM_MEMBERS_FIELD = 'CareTeam.members';

export interface CareTeamChange {
  careTeamId: string;
  practitionerId: string;
  /** Null when the practitioner was added. */
  refusal: CareTeamRefusal | null;
}

export function recordCareTeamChange(collector: AuditCollector, change: CareTeamChange): void {
  const { careTeamId, practitionerId, refusal } = change;
  const entities = [
    ['CareTeam', careTeamId],
    ['Practitioner', practitionerId],
  ] as const;
  for (const [entityType, entityId] of entities) {
    const group = collector.group({ patientId: null, entityType, entityId, action: 'update' });
    if (refusal) group.add(CARE_TEAM_MEMBERS_FIELD, 'denied', refusal);
    else group.add(CARE_TEAM_MEMBERS_FIELD, 'allowed');
  }
  collector.raise(refusal ? { kind: 'care-team-change-refused', careTeamId, practitionerId, refusal } : { kind: 'care-team-change', careTeamId, practitionerId });
}
