import { Migration20261125000000Foundation } from './Migration20261125000000Foundation.js';
import { Migration20261125120000Consent } from './Migration20261125120000Consent.js';
import { Migration20261125130000EmergencyAccess } from './Migration20261125130000EmergencyAccess.js';
import { Migration20261125140000FieldEncryption } from './Migration20261125140000FieldEncryption.js';
import { Migration20261125150000AuditTrail } from './Migration20261125150000AuditTrail.js';
import { Migration20261126000000AuditEventGroups } from './Migration20261126000000AuditEventGroups.js';
import { Migration20261127000000SharingAgreements } from './Migration20261127000000SharingAgreements.js';
import { Migration20261130000000WritesAndRevocations } from './Migration20261130000000WritesAndRevocations.js';
import { Migration20261201000000ScopedDataKeys } from './Migration20261201000000ScopedDataKeys.js';
import { Migration20261202000000PurposeOfUse } from './Migration20261202000000PurposeOfUse.js';
import { Migration20261202010000EmergencyReview } from './Migration20261202010000EmergencyReview.js';
import { Migration20261202020000AuditTokenRoles } from './Migration20261202020000AuditTokenRoles.js';
import { Migration20261202030000EmergencyReviewGuard } from './Migration20261202030000EmergencyReviewGuard.js';
import { Migration20261203000000SensitivityLabels } from './Migration20261203000000SensitivityLabels.js';
import { Migration20261203010000ConsentProvisions } from './Migration20261203010000ConsentProvisions.js';

/**
 * Every migration, in order. Listed explicitly (not discovered from the
 * folder) so the same list runs from TypeScript sources and from a build.
 * A new migration is a new file here, never an edit of an applied one.
 */
export const MIGRATIONS = [
  { name: 'Migration20261125000000Foundation', class: Migration20261125000000Foundation },
  { name: 'Migration20261125120000Consent', class: Migration20261125120000Consent },
  { name: 'Migration20261125130000EmergencyAccess', class: Migration20261125130000EmergencyAccess },
  { name: 'Migration20261125140000FieldEncryption', class: Migration20261125140000FieldEncryption },
  { name: 'Migration20261125150000AuditTrail', class: Migration20261125150000AuditTrail },
  { name: 'Migration20261126000000AuditEventGroups', class: Migration20261126000000AuditEventGroups },
  { name: 'Migration20261127000000SharingAgreements', class: Migration20261127000000SharingAgreements },
  { name: 'Migration20261130000000WritesAndRevocations', class: Migration20261130000000WritesAndRevocations },
  { name: 'Migration20261201000000ScopedDataKeys', class: Migration20261201000000ScopedDataKeys },
  { name: 'Migration20261202000000PurposeOfUse', class: Migration20261202000000PurposeOfUse },
  { name: 'Migration20261202010000EmergencyReview', class: Migration20261202010000EmergencyReview },
  { name: 'Migration20261202020000AuditTokenRoles', class: Migration20261202020000AuditTokenRoles },
  { name: 'Migration20261202030000EmergencyReviewGuard', class: Migration20261202030000EmergencyReviewGuard },
  { name: 'Migration20261203000000SensitivityLabels', class: Migration20261203000000SensitivityLabels },
  { name: 'Migration20261203010000ConsentProvisions', class: Migration20261203010000ConsentProvisions },
];
