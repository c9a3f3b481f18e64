import type { Role } from '../src/auth/index.js';
import { edgesAt, largestOrganization, type BenchStack, type Organization, type Workload } from './support.js';

/**
 * The workloads the benchmarks share: a billing page of patients, the
 * billing dashboard and a patient's chart, built from the run's context.
 * Each benchmark names them, describes them and picks its fields.
 */

/** What the workloads need to build their operations and tokens. */
export interface Context {
  stack: BenchStack;
  /** The organization holding the most patients, and a billing specialist account of it. */
  organization: Organization;
}

export async function buildContext(stack: BenchStack): Promise<Context> {
  return { stack, organization: await largestOrganization(stack.db) };
}

/** Eight patient fields a billing list shows. */
export const LIST_FIELDS = 'id mrn name { given family } birthDate gender address { city state postalCode } phone email';

export const DASHBOARD_SIZE = 1000;

/** A clinician's chart: six lists from the clinical and billing subgraphs, a few fields apiece. */
export const CLINICIAN_CHART_LISTS = {
  encounters: 'id status class period { start end }',
  conditions: 'id clinicalStatus code { code display } onsetDate',
  medicationRequests: 'id status medication { code display } authoredOn',
  observations: 'id code { code display } value unit effectiveAt',
  clinicalNotes: 'id type { display } createdAt',
  coverages: 'id payer plan status period { start end }',
} as const;

/** A billing token for the largest organization, with a billing specialist of it as the subject when there is one. */
export async function billingToken(context: Context): Promise<string> {
  const { stack, organization } = context;
  return stack.token('billing', {
    organizationId: organization.id,
    ...(organization.billingSubject && { subject: organization.billingSubject }),
  });
}

interface Shared {
  description: string;
  /** Every variant must return the same body (see WorkloadRequest.sameBody). */
  sameBody?: boolean;
}

/** `partner-list`: billing, patients(first: 50) with LIST_FIELDS, through the gateway. */
export function partnerList(spec: Shared): Workload<Context> {
  return {
    name: 'partner-list',
    description: spec.description,
    async prepare(context) {
      return {
        url: (variant) => variant.gatewayUrl,
        token: await billingToken(context),
        query: `query PartnerList { patients(first: 50) { edges { node { ${LIST_FIELDS} } } } }`,
        rows: (data) => edgesAt(data, 'patients'),
        sameBody: spec.sameBody ?? false,
      };
    },
  };
}

/** Billing, patients(first: DASHBOARD_SIZE) with `fields`, through the gateway or straight to the patient subgraph. */
export function dashboard(spec: Shared & { name: string; fields: string; target?: 'gateway' | 'patient' }): Workload<Context> {
  return {
    name: spec.name,
    description: spec.description,
    async prepare(context) {
      const expected = Math.min(DASHBOARD_SIZE, context.organization.patients);
      return {
        url: (variant) => (spec.target === 'patient' ? variant.subgraphUrls.patient : variant.gatewayUrl),
        token: await billingToken(context),
        query: `query Dashboard { patients(first: ${DASHBOARD_SIZE}) { edges { node { ${spec.fields} } } } }`,
        rows: (data) => edgesAt(data, 'patients'),
        sameBody: spec.sameBody ?? false,
        notes: [
          `billing token of ${context.organization.name} (${context.organization.patients} patients): ${expected} rows per response` +
            (expected < DASHBOARD_SIZE ? ` (fewer than ${DASHBOARD_SIZE}: raise --patients for a full page)` : ''),
        ],
      };
    },
  };
}

/** `chart`: the sample patient with the first 10 of each of `lists`, read with the sample principal of `role`, through the gateway. */
export function chart(spec: Shared & { lists: Readonly<Record<string, string>>; role: Role; notes: string[] }): Workload<Context> {
  return {
    name: 'chart',
    description: spec.description,
    async prepare({ stack }) {
      const patientId = stack.principals.patient.patientId;
      if (!patientId) throw new Error('the development principals name no sample patient');
      const lists = Object.entries(spec.lists)
        .map(([field, selection]) => `${field}(first: 10) { edges { node { ${selection} } } }`)
        .join(' ');
      return {
        url: (variant) => variant.gatewayUrl,
        token: await stack.token(spec.role),
        query: `query Chart($id: ID!) { patient(id: $id) { id name { given family } ${lists} } }`,
        variables: { id: patientId },
        rows: (data) => (data['patient'] ? 1 + Object.keys(spec.lists).reduce((sum, field) => sum + edgesAt(data, 'patient', field), 0) : 0),
        sameBody: spec.sameBody ?? false,
        notes: spec.notes,
      };
    },
  };
}
