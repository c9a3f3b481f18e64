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
] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** Role names as the command-line tools take them: `--role a,b` or `--role a --role b` (not checked: see isRole). */
export function roleList(values: readonly string[] | undefined): string[] {
  return (values ?? []).flatMap((value) => value.split(',')).map((role) => role.trim()).filter((role) => role !== '');
}

/** Who is calling, as established from a verified token. Never holds PHI. */
export interface Principal {
  subject: string;
  roles: readonly Role[];
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
}

/** A study name: letters, digits and . _ : - (it names a key derivation and is kept in logs). */
export const STUDY_NAME = /^[A-Za-z0-9._:-]{1,64}$/;
