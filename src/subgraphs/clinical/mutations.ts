import { randomUUID } from 'node:crypto';
import { earlierWrite, writeWithRecord } from '../writes.js';
import type { AddClinicalNoteInput, AddConditionInput, MutationResolvers } from './__generated__/resolvers-types.js';
import { ClinicalNote, Condition, Encounter } from '../../db/entities.js';
import type { SubgraphContext } from '../context.js';
import { patientVisible } from '../loaders.js';
import { mayWriteFor } from '../access.js';
import { failed, InputCheck, invalidInput, type Failure } from '../mutation-results.js';
import { isUuid } from '../pagination.js';
import { toIsoDate } from '../scalars.js';
import { clinicalNoteById, conditionById } from './repository.js';
import { CRYPTO_VERSION_ENCRYPTED, sealRow } from '../../db/encryption.js';
import { labelBinding, labelsFor, textArrayLiteral, labelsOfCodes, noteLabels, sensitivitiesOf } from '../../policy/sensitivity.js';
import { CryptoError } from '../../crypto/errors.js';
import { toBuffer } from '../../crypto/index.js';
import type { EntityManager } from '@mikro-orm/sql';
import { CodeSystem } from '../codes.js';

/** LOINC document types a note may have. */
export const NOTE_TYPES: Record<string, string> = {
  '11506-3': 'Progress note',
  '34117-2': 'History and physical note',
  '18842-5': 'Discharge summary',
  '11488-4': 'Consult note',
};
const MAX_NOTE_LENGTH = 20_000;
const MAX_DISPLAY_LENGTH = 200;
/** ICD-10-CM: a letter, two characters, optionally a dot and up to four more. */
const ICD10_CM = /^[A-TV-Z][0-9][0-9AB](\.[0-9A-TV-Z]{1,4})?$/;

/** The patient must be one the caller may see, and the encounter (if any) one of that patient's. */
async function checkTarget(
  check: InputCheck,
  input: { patientId: string; encounterId?: string | null },
  context: SubgraphContext,
  writes: 'writeClinicalNote' | 'writeCondition',
): Promise<Failure | null> {
  check.require(isUuid(input.patientId), 'input.patientId', 'Not an id.');
  if (input.encounterId !== undefined && input.encounterId !== null) check.require(isUuid(input.encounterId), 'input.encounterId', 'Not an id.');
  if (!check.ok) return invalidInput(check);
  // Visible, and reached by a role that may write this for the patient (not only by another role of the same token): otherwise as absent.
  const writable = (await context.loader(patientVisible).load(input.patientId)) && (await mayWriteFor(context.access, input.patientId, writes));
  if (!writable) return failed('NOT_FOUND', 'No such patient among those you may see.');
  if (input.encounterId) {
    const encounter = await context.em.findOne(Encounter, { id: input.encounterId, patient: input.patientId });
    if (!encounter) return failed('NOT_FOUND', 'No such encounter for this patient.', [{ field: 'input.encounterId', message: 'Not an encounter of this patient.' }]);
  }
  return null;
}

async function addClinicalNote(input: AddClinicalNoteInput, context: SubgraphContext): Promise<Failure | { ok: true; error: null; note: ClinicalNote | null }> {
  const earlier = await earlierWrite(context, 'Mutation.addClinicalNote', input);
  if (earlier) return { ok: true, error: null, note: earlier.resultId ? await context.loader(clinicalNoteById).load(earlier.resultId) : null };
  const check = new InputCheck()
    .require(input.typeCode in NOTE_TYPES, 'input.typeCode', `Use one of ${Object.keys(NOTE_TYPES).join(', ')}.`)
    .require(input.text.trim().length > 0 && input.text.length <= MAX_NOTE_LENGTH, 'input.text', `Write 1 to ${MAX_NOTE_LENGTH} characters.`);
  const refused = await checkTarget(check, input, context, 'writeClinicalNote');
  if (refused) return refused;
  const id = randomUUID();
  // Of its encounter's diagnoses, only the categories the writer may see: the answer must not tell of a diagnosis they cannot (a note
  // cannot say what its writer does not know; the writer marks it, or names the codes, for anything else).
  const withheld = await context.access.labels.withheldByRolesFor(input.patientId);
  const author = await context.access.practitionerId();
  const written = await writeWithRecord(context, {
    coordinate: 'Mutation.addClinicalNote',
    input,
    resultId: () => id,
    work: async (em) => {
      // The encounter locked, as addCondition locks it: a diagnosis recorded at the same moment either labels this note or is seen by it.
      if (input.encounterId) await em.execute('select "id" from "encounter" where "id" = ? for update', [input.encounterId]);
      const diagnoses = input.encounterId
        ? await em.execute<{ security_labels: string[] | null }[]>('select "security_labels" from "condition" where "encounter_id" = ?', [input.encounterId])
        : [];
      const inherited = diagnoses.map((diagnosis) => labelsFor(sensitivitiesOf(diagnosis.security_labels ?? []).filter((category) => !withheld.includes(category))));
      const securityLabels = noteLabels(input.text, inherited, input.sensitiveData ?? []);
      const stored = await sealRow('clinical_note', { id, text: input.text, security_labels: securityLabels }, context.sealer);
      await em.insert(ClinicalNote, {
        id,
        patient: input.patientId,
        encounter: input.encounterId ?? null,
        author,
        typeCode: input.typeCode,
        typeDisplay: NOTE_TYPES[input.typeCode] ?? input.typeCode,
        text: stored['text'] as Buffer,
        cryptoVersion: CRYPTO_VERSION_ENCRYPTED,
        createdAt: new Date(),
        securityLabels,
      });
    },
  });
  const noteId = written.replayed ? written.resultId : id;
  return { ok: true, error: null, note: noteId ? await context.loader(clinicalNoteById).load(noteId) : null };
}

async function addCondition(input: AddConditionInput, context: SubgraphContext): Promise<Failure | { ok: true; error: null; condition: Condition | null }> {
  const earlier = await earlierWrite(context, 'Mutation.addCondition', input);
  if (earlier) return { ok: true, error: null, condition: earlier.resultId ? await context.loader(conditionById).load(earlier.resultId) : null };
  const today = toIsoDate(new Date());
  const check = new InputCheck()
    .require(ICD10_CM.test(input.code), 'input.code', 'Use an ICD-10-CM code such as E11.9.')
    .require(input.display.trim().length > 0 && input.display.length <= MAX_DISPLAY_LENGTH, 'input.display', `Write 1 to ${MAX_DISPLAY_LENGTH} characters.`);
  if (input.onsetDate) check.require(input.onsetDate <= today, 'input.onsetDate', 'Cannot be in the future.');
  const refused = await checkTarget(check, input, context, 'writeCondition');
  if (refused) return refused;
  const id = randomUUID();
  const securityLabels = labelsOfCodes([{ system: CodeSystem.icd10cm, code: input.code }]);
  const stored = await sealRow('condition', { id, code: input.code, display: input.display.trim(), security_labels: securityLabels }, context.sealer);
  const written = await writeWithRecord(context, {
    coordinate: 'Mutation.addCondition',
    input,
    resultId: () => id,
    work: async (em) => {
      if (input.encounterId) await em.execute('select "id" from "encounter" where "id" = ? for update', [input.encounterId]);
      await em.insert(Condition, {
        id,
        patient: input.patientId,
        encounter: input.encounterId ?? null,
        code: stored['code'] as Buffer,
        display: stored['display'] as Buffer,
        cryptoVersion: CRYPTO_VERSION_ENCRYPTED,
        clinicalStatus: input.clinicalStatus,
        onsetDate: input.onsetDate ?? null,
        recordedDate: today,
        securityLabels,
      });
      if (input.encounterId && securityLabels.length > 0) await relabelEncounterNotes(em, context, input.patientId, input.encounterId, securityLabels);
    },
  });
  const conditionId = written.replayed ? written.resultId : id;
  return { ok: true, error: null, condition: conditionId ? await context.loader(conditionById).load(conditionId) : null };
}

/**
 * A labelled diagnosis recorded for an encounter labels the encounter's
 * notes too (they were written about it), in the diagnosis's transaction:
 * each note's text is sealed again with its new labels bound, and the
 * change is on the audit trail. The writer knows the diagnosis it records,
 * so this tells them nothing. A note not labelled yet is left to the
 * labelling step; one whose text does not decrypt is left as it is (it
 * already shows nothing, and is audited as failed when read).
 */
async function relabelEncounterNotes(em: EntityManager, context: SubgraphContext, patientId: string, encounterId: string, diagnosis: readonly string[]): Promise<void> {
  const notes = await em.execute<{ id: string; text: Uint8Array; security_labels: string[] | null }[]>(
    `select "id", "text", "security_labels" from "clinical_note" where "encounter_id" = ? and "crypto_version" = ? and "security_labels" is not null order by "id" for update`,
    [encounterId, CRYPTO_VERSION_ENCRYPTED],
  );
  for (const note of notes) {
    const labels = labelsFor(new Set([...sensitivitiesOf(note.security_labels ?? []), ...sensitivitiesOf(diagnosis)]));
    if (labels.join(',') === [...(note.security_labels ?? [])].sort().join(',')) continue;
    let text: string;
    try {
      text = await context.sealer.cipher.decrypt(toBuffer(note.text), { table: 'clinical_note', column: 'text', rowId: labelBinding(note.id, note.security_labels) });
    } catch (error) {
      // A text that does not authenticate shows nothing anyway: its labels are raised all the same (withheld more, never less).
      // A key this instance cannot use yet (not unwrapped, retired) stops the write instead: another instance would still read the text.
      if (!(error instanceof CryptoError) || error.failure !== 'DECRYPTION_FAILED') throw error;
      await em.execute('update "clinical_note" set "security_labels" = ?::text[] where "id" = ?', [textArrayLiteral(labels), note.id], 'run');
      context.audit.group({ patientId, entityType: 'ClinicalNote', entityId: note.id, action: 'update' }).add('ClinicalNote.securityLabels', 'allowed');
      continue;
    }
    const sealed = await sealRow('clinical_note', { id: note.id, text, security_labels: labels }, context.sealer);
    await em.execute('update "clinical_note" set "text" = ?, "security_labels" = ?::text[] where "id" = ?', [sealed['text'], textArrayLiteral(labels), note.id], 'run');
    context.audit.group({ patientId, entityType: 'ClinicalNote', entityId: note.id, action: 'update' }).add('ClinicalNote.securityLabels', 'allowed');
  }
}

export const mutations: MutationResolvers = {
  addClinicalNote: (_parent, { input }, context) => addClinicalNote(input, context),
  addCondition: (_parent, { input }, context) => addCondition(input, context),
};
