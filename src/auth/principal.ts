/** Roles are part of the public contract (tokens carry them by these names). */
export const ROLES = [
  'clinician',
  'nurse',
  'billing',
  'patient',
  'researcher',
  'partner',
  'auditor',
  'admin',
  'integrator',
  'privacyOfficer',
] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** Role names as the command-line tools take them: `--role a,b` or `--role a --role b` (not checked: see isRole). */
export function roleList(values: readonly string[] | undefined): string[] {
  return (values ?? []).flatMap((value) => value.split(',')).map((role) => role.trim()).filter((role) => role !== '');
}

/**
 * Why data is requested: HL7 v3 PurposeOfUse codes (system
 * http://terminology.hl7.org/CodeSystem/v3-ActReason). A token's
 * `purpose_of_use` claim names the purposes it allows; a request chooses
 * one of them with the `X-Purpose-Of-Use` header. The access policy decides
 * per (role, purpose) (src/policy/purposes.ts). Codes are part of the
 * public contract.
 */
export const PURPOSES_OF_USE = {
  TREAT: 'treatment',
  ETREAT: 'emergency treatment',
  HPAYMT: 'healthcare payment',
  HOPERAT: 'healthcare operations',
  HRESCH: 'healthcare research',
  PUBHLTH: 'public health',
  PATRQT: 'patient requested',
  HSYSADMIN: 'health system administration',
} as const;
export type PurposeOfUse = keyof typeof PURPOSES_OF_USE;
export const PURPOSE_CODES = Object.keys(PURPOSES_OF_USE) as PurposeOfUse[];

export function isPurposeOfUse(value: unknown): value is PurposeOfUse {
  return typeof value === 'string' && Object.hasOwn(PURPOSES_OF_USE, value);
}

/** The request header that chooses one of the token's purposes. */
export const PURPOSE_HEADER = 'x-purpose-of-use';

/** Who is calling, as established from a verified token. Never holds PHI. */
export interface Principal {
  subject: string;
  /**
   * The roles that act in this request: those of the token that may read
   * for its purpose of use (src/http.ts narrows them once the purpose is
   * chosen). What the caller may read is decided from these.
   */
  roles: readonly Role[];
  /**
   * Every role the token carries, whatever the purpose: for rules about the
   * account (separation of duties), never for what it may read.
   */
  tokenRoles: readonly Role[];
  organizationId: string | null;
  /** Set for the `patient` role: the record the caller is the subject of. */
  patientId: string | null;
  /** True when `amr` contains `mfa`. */
  mfa: boolean;
  tokenId: string;
  expiresAt: Date;
  /**
   * Set for the `researcher` role (claim `study`): the study the token reads
   * for. Record ids are shown to it as that study's pseudonyms.
   */
  study: string | null;
  /**
   * The purposes the token's `purpose_of_use` claim allows (known codes
   * only), or null when the token has no such claim (then its roles'
   * default purposes are allowed: src/policy/purposes.ts).
   */
  purposes: readonly PurposeOfUse[] | null;
  /**
   * The purpose this request reads for, chosen when the request is
   * authenticated (http.ts). Null until then: a principal without one is
   * granted nothing (src/policy/decisions.ts).
   */
  purpose: PurposeOfUse | null;
}

/** A study name: letters, digits and . _ : - (it names a key derivation and is kept in logs). */
export const STUDY_NAME = /^[A-Za-z0-9._:-]{1,64}$/;
