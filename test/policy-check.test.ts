import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
let folder: string;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'phi-graph-policy-check-'));
});

afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

async function check(operation: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(folder, `op-${Math.random().toString(36).slice(2)}.graphql`);
  await writeFile(file, operation);
  try {
    const { stdout, stderr } = await run('npx', ['tsx', 'src/cli/policy-check.ts', ...args, file]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('npm run policy:check', () => {
  it('lists the fields a partner would be denied or get masked, and fails', async () => {
    const result = await check(
      'query Chart($id: ID!) { patient(id: $id) { name { text } ssn birthDate clinicalNotes { edges { node { text } } } medicationRequests { edges { node { medication { display } } } } } }',
      '--role',
      'partner',
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('DENIED  patient.ssn');
    expect(result.stdout).toContain('DENIED  patient.clinicalNotes');
    expect(result.stdout).not.toContain('patient.medicationRequests');
    expect(result.stdout).not.toContain('DENIED  patient.name');
  }, 60_000);

  it('checks an operation for one purpose of use (--purpose), and refuses a purpose the roles may not read for', async () => {
    const operation = 'query Chart($id: ID!) { patient(id: $id) { name { text } conditions { edges { node { code { code } } } } coverages { edges { node { payer } } } } }';
    const treating = await check(operation, '--role', 'clinician');
    expect(treating.code).toBe(0);
    expect(treating.stdout).toContain('as clinician for TREAT');
    const paying = await check(operation, '--role', 'clinician', '--purpose', 'HPAYMT');
    expect(paying.code).toBe(1);
    expect(paying.stdout).toContain('as clinician for HPAYMT');
    expect(paying.stdout).toContain('DENIED  patient.conditions');
    expect(paying.stdout).not.toContain('DENIED  patient.coverages');
    expect(paying.stdout).not.toContain('DENIED  patient.name');
    const research = await check(operation, '--role', 'clinician', '--purpose', 'HRESCH');
    expect(research.code).toBe(1);
    expect(research.stdout).toContain('REFUSED (PURPOSE_NOT_ALLOWED)');
    expect((await check(operation, '--role', 'clinician', '--purpose', 'treat')).code).toBe(2);
  }, 60_000);

  it('passes an operation the role may run in full, naming masked fields', async () => {
    const result = await check('{ patients(first: 5) { edges { node { id ssn mrn } } } }', '--role', 'clinician');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('MASKED  patients.edges.node.ssn  (Patient.ssn, ssnLast4)');
  }, 60_000);

  it('flags PHI fields for a token without MFA', async () => {
    const result = await check('{ patients(first: 5) { edges { node { id mrn } } } }', '--role', 'clinician', '--no-mfa');
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('DENIED  patients.edges.node.mrn');
    expect(result.stdout).not.toContain('node.id ');
  }, 60_000);

  it('reports the arguments a role may not use, inline or through a variable, and fails', async () => {
    const result = await check('query Find($mrn: String!, $filter: PatientFilter) { patientByMrn(mrn: $mrn) { id } patients(filter: $filter) { edges { node { id } } } }', '--role', 'partner');
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('ARGUMENT DENIED  patientByMrn.mrn  (Query.patientByMrn(mrn:)');
    // A variable of an input type may carry any of its fields: each one the partner may not use is listed.
    expect(result.stdout).toContain('ARGUMENT DENIED  patients.filter.careTeamId  (PatientFilter.careTeamId');
    expect(result.stdout).toContain('ARGUMENT DENIED  patients.filter.managingOrganizationId');
    expect(result.stdout).not.toContain('patients.filter.gender');
    const clinician = await check('{ patients(first: 5, filter: { gender: male }) { edges { node { id } } } }', '--role', 'clinician', '--no-mfa');
    expect(clinician.stdout).toContain('ARGUMENT DENIED  patients.filter.gender  (PatientFilter.gender, needs an MFA token');
  }, 60_000);

  it('prints an operation\'s cost against the role\'s budget, and fails one that would be refused for a limit', async () => {
    const page = '{ patients(first: 50) { edges { node { id name { given family } } } } }';
    const partner = await check(page, '--role', 'partner');
    expect(partner.stdout).toMatch(/COST {2}\(anonymous\): \d+ of the budget of 5000\n/);
    const dashboard = '{ patients(first: 1000) { edges { node { id name { given family } birthDate gender } } } }';
    const refused = await check(dashboard, '--role', 'partner');
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('REFUSED at run time: cost');
    const billing = await check(dashboard, '--role', 'billing');
    expect(billing.code).toBe(0);
  }, 60_000);

  it('refuses an operation that does not validate against the API, with the reason', async () => {
    const result = await check('{ patients { edges { node { shoeSize } } } }', '--role', 'admin');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('shoeSize');
  }, 60_000);

  it('says in one line that a file it cannot read is missing, without a stack', async () => {
    const missing = join(folder, 'no-such-operation.graphql');
    const result = await run('npx', ['tsx', 'src/cli/policy-check.ts', '--role', 'admin', missing]).then(
      (done) => ({ code: 0, ...done }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe(`policy:check: cannot read ${missing} (ENOENT)`);
  }, 60_000);
});
