import type { Role } from '../src/auth/index.js';
import { edgesAt, largestOrganization, timedPost, type BenchStack, type Organization, type Workload } from './support.js';

/**
 * The workloads the benchmarks share: a billing page of patients, a
 * partner's page of patients, the billing dashboard, a patient's chart and
 * a lookup by MRN, built from the run's context. Each benchmark names them,
 * describes them and picks its fields.
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

/** The looked-up patient is the last of the first LOOKUP_POSITION of its organization. */
const LOOKUP_POSITION = 500;

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

/**
 * What a partner (a pharmacy) reads of a patient: eight fields, three of
 * them @encrypted (name, birthDate, phone), every one allowed to the
 * partner role. Of a patient's own fields the partner role reads only id,
 * name, birthDate, gender, phone and email (four of them encrypted), so
 * eight fields with three encrypted leave email out and take the three
 * lists a pharmacy needs, from the clinical and billing subgraphs, with
 * fields the partner may read (none of them encrypted).
 */
export const PARTNER_FIELDS = [
  'id',
  'name { given family }',
  'birthDate',
  'gender',
  'phone',
  'medicationRequests(first: 5) { edges { node { id status medication { code display } } } }',
  'allergyIntolerances(first: 5) { edges { node { id criticality code { display } } } }',
  'coverages(first: 2) { edges { node { id payer plan status } } }',
].join(' ');

/** The lists of PARTNER_FIELDS, for counting their rows. */
const PARTNER_LISTS = ['medicationRequests', 'allergyIntolerances', 'coverages'] as const;

/** Patients and list entries in a page of `patients` read with PARTNER_FIELDS. */
function partnerRows(data: Record<string, unknown>): { patients: number; entries: number } {
  const edges = ((data['patients'] as { edges?: { node?: Record<string, unknown> }[] } | null)?.edges ?? []).map((edge) => edge.node ?? {});
  const entries = edges.reduce((sum, node) => sum + PARTNER_LISTS.reduce((inner, list) => inner + edgesAt(node, list), 0), 0);
  return { patients: edges.length, entries };
}

/**
 * `partner`: the sample partner organization's token (its patients are
 * those with a partner-sharing consent in force for it), patients(first:
 * `size`) with PARTNER_FIELDS, through the gateway.
 */
export function partnerPage(spec: Shared & { name?: string; size: number }): Workload<Context> {
  return {
    name: spec.name ?? 'partner',
    description: spec.description,
    async prepare({ stack }) {
      return {
        url: (variant) => variant.gatewayUrl,
        token: await stack.token('partner'),
        query: `query PartnerPage { patients(first: ${spec.size}) { edges { node { ${PARTNER_FIELDS} } } } }`,
        rows: (data) => {
          const { patients, entries } = partnerRows(data);
          // A page whose lists all came back empty measures less than it says: counted as no rows, which stops the run.
          return entries > 0 ? patients : 0;
        },
        sameBody: spec.sameBody ?? false,
        notes: [`sample partner organization's token (patients with a partner-sharing consent in force for it)`],
      };
    },
  };
}

/**
 * `lookup`: billing, patientByMrn (the blind index: the MRN's keyed hash
 * is looked up, never the MRN) of a patient of the largest organization,
 * with five fields, through the gateway. The MRN is read once from the
 * first variant (`patients(first: LOOKUP_POSITION)`, the last of the page).
 */
export function mrnLookup(spec: Shared): Workload<Context> {
  return {
    name: 'lookup',
    description: spec.description,
    async prepare(context) {
      const token = await billingToken(context);
      const first = context.stack.variants[0];
      if (!first) throw new Error('no variant to read an MRN from');
      const page = await timedPost(first.gatewayUrl, token, `query Mrns { patients(first: ${LOOKUP_POSITION}) { edges { node { mrn } } } }`);
      const edges = (page.body.data?.['patients'] as { edges?: { node?: { mrn?: string | null } }[] } | null)?.edges ?? [];
      const mrn = edges.at(-1)?.node?.mrn;
      if (!mrn) throw new Error(`no MRN came back to look up: ${page.text.slice(0, 300)}`);
      return {
        url: (variant) => variant.gatewayUrl,
        token,
        query: 'query Lookup($mrn: String!) { patientByMrn(mrn: $mrn) { id mrn name { given family } birthDate gender } }',
        variables: { mrn },
        rows: (data) => (data['patientByMrn'] ? 1 : 0),
        sameBody: spec.sameBody ?? false,
        notes: [`billing token of ${context.organization.name}; the MRN of its patient number ${edges.length} in id order`],
      };
    },
  };
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

/** Billing, patients(first: `size`, default DASHBOARD_SIZE) with `fields`, through the gateway or straight to the patient subgraph. */
export function dashboard(spec: Shared & { name: string; fields: string; target?: 'gateway' | 'patient'; size?: number }): Workload<Context> {
  const size = spec.size ?? DASHBOARD_SIZE;
  return {
    name: spec.name,
    description: spec.description,
    async prepare(context) {
      const expected = Math.min(size, context.organization.patients);
      return {
        url: (variant) => (spec.target === 'patient' ? variant.subgraphUrls.patient : variant.gatewayUrl),
        token: await billingToken(context),
        query: `query Dashboard { patients(first: ${size}) { edges { node { ${spec.fields} } } } }`,
        rows: (data) => edgesAt(data, 'patients'),
        sameBody: spec.sameBody ?? false,
        notes: [
          `billing token of ${context.organization.name} (${context.organization.patients} patients): ${expected} rows per response` +
            (expected < size ? ` (fewer than ${size}: raise --patients for a full page)` : ''),
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
