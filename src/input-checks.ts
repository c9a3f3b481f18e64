import { HeaderMap, type ApolloServerPlugin, type BaseContext, type GraphQLRequestContext, type GraphQLResponse } from '@apollo/server';
import { coercedVariables } from './policy/operation-variables.js';
import {
  GraphQLError,
  Kind,
  TypeInfo,
  isInputObjectType,
  isListType,
  isNonNullType,
  valueFromAST,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLInputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { ErrorCode } from './errors.js';

/**
 * Every string an operation sends has a maximum length and no characters
 * that have no business in it, checked before anything runs, on the gateway
 * and on every subgraph: a refusal is 400 BAD_USER_INPUT naming the input
 * by its path, never quoting it, and nothing is half-written.
 */

export interface TextRule {
  /** Characters (UTF-16 code units, as JavaScript counts them). */
  max: number;
  /** Free text: line breaks and tabs are allowed. */
  multiline?: boolean;
}

/** Strings not listed here: single-line, at most this long (an id, a code, a name, a filter, a cursor). */
export const DEFAULT_TEXT_RULE: TextRule = { max: 1000 };

/** Input fields and arguments that take longer or multi-line text, by coordinate. */
export const TEXT_RULES: Readonly<Record<string, TextRule>> = {
  'AddClinicalNoteInput.text': { max: 20_000, multiline: true },
  // FHIR R4 Consent JSON (the import checks its own limit of 50 resources).
  'ImportConsentsInput.resources': { max: 200_000, multiline: true },
  'RecordPaperConsentInput.documentReference': { max: 255 },
  'RevokeConsentInput.documentReference': { max: 255 },
  'ImportConsentsInput.documentReference': { max: 255 },
  'OpenEmergencyAccessInput.reason': { max: 2_000, multiline: true },
  'AddConditionInput.display': { max: 200 },
  'AddressInput.line': { max: 120 },
  'AddressInput.city': { max: 120 },
  'UpdateContactInput.email': { max: 320 },
  'UpdateContactInput.phone': { max: 32 },
};

/** C0 and C1 controls and DEL, and the bidirectional overrides that make text read other than it is stored. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const SINGLE_LINE_FORBIDDEN = /[\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/;
/** The same, but tab, line feed and carriage return are text. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const MULTILINE_FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/;

export interface TextProblem {
  path: string;
  coordinate: string;
  problem: 'TOO_LONG' | 'CONTROL_CHARACTERS';
  max: number;
  length: number;
}

function checkText(value: string, coordinate: string, path: string): TextProblem | null {
  const rule = TEXT_RULES[coordinate] ?? DEFAULT_TEXT_RULE;
  if (value.length > rule.max) return { path, coordinate, problem: 'TOO_LONG', max: rule.max, length: value.length };
  if ((rule.multiline ? MULTILINE_FORBIDDEN : SINGLE_LINE_FORBIDDEN).test(value)) return { path, coordinate, problem: 'CONTROL_CHARACTERS', max: rule.max, length: value.length };
  return null;
}

/** Every string in an argument's value, with the coordinate of the input field (or argument) that holds it. */
function walk(type: GraphQLInputType, value: unknown, coordinate: string, path: string, problems: TextProblem[]): void {
  if (value === null || value === undefined) return;
  const named = isNonNullType(type) ? type.ofType : type;
  if (isListType(named)) {
    if (Array.isArray(value)) value.forEach((item, index) => walk(named.ofType, item, coordinate, `${path}[${index}]`, problems));
    return;
  }
  if (isInputObjectType(named)) {
    if (typeof value !== 'object') return;
    const fields = named.getFields();
    for (const [name, fieldValue] of Object.entries(value as Record<string, unknown>)) {
      const field = fields[name];
      if (field) walk(field.type, fieldValue, `${named.name}.${name}`, `${path}.${name}`, problems);
    }
    return;
  }
  if (typeof value === 'string') {
    const problem = checkText(value, coordinate, path);
    if (problem) problems.push(problem);
  }
}

/** The strings of an operation's arguments (variables as coerced, literals, the fragments it spreads) that break their rule. */
export function textProblems(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown>): TextProblem[] {
  const problems: TextProblem[] = [];
  const fragments = new Map(
    document.definitions.filter((definition): definition is FragmentDefinitionNode => definition.kind === Kind.FRAGMENT_DEFINITION).map((fragment) => [fragment.name.value, fragment]),
  );
  const walked = new Set<string>();
  const visitNode = (root: OperationDefinitionNode | FragmentDefinitionNode) => {
    const typeInfo = new TypeInfo(schema);
    visit(
      root,
      visitWithTypeInfo(typeInfo, {
        Argument(node) {
          const argument = typeInfo.getArgument();
          const parent = typeInfo.getParentType();
          const field = typeInfo.getFieldDef();
          if (!argument) return;
          const coordinate = typeInfo.getDirective() || !parent || !field ? `@${argument.name}` : `${parent.name}.${field.name}(${argument.name}:)`;
          walk(argument.type, valueFromAST(node.value, argument.type, variables), coordinate, argument.name, problems);
        },
        FragmentSpread(node) {
          const fragment = fragments.get(node.name.value);
          if (!fragment || walked.has(fragment.name.value)) return;
          walked.add(fragment.name.value);
          visitNode(fragment);
        },
      }),
    );
  };
  visitNode(operation);
  return problems;
}

export function textProblemError(problem: TextProblem): GraphQLError {
  const message =
    problem.problem === 'TOO_LONG'
      ? `The input ${problem.path} is ${problem.length} characters long; it may be at most ${problem.max}.`
      : `The input ${problem.path} contains control or direction-override characters, which it may not.`;
  return new GraphQLError(message, { extensions: { code: ErrorCode.BadUserInput, reason: problem.problem, argumentPath: problem.path } });
}

/** Refuses, before anything runs, an operation with a string past its rule. */
export function inputTextPlugin<TContext extends BaseContext>(schema: () => GraphQLSchema): ApolloServerPlugin<TContext> {
  return {
    requestDidStart() {
      return Promise.resolve({
        responseForOperation(requestContext: GraphQLRequestContext<TContext>) {
          const { operation, document } = requestContext;
          if (!operation || !document) return Promise.resolve(null);
          const variables = coercedVariables(schema(), operation, requestContext.request);
          if (!variables) return Promise.resolve(null);
          const problems = textProblems(schema(), document, operation, variables);
          if (problems.length === 0) return Promise.resolve(null);
          const response: GraphQLResponse = {
            http: { status: 400, headers: new HeaderMap() },
            body: { kind: 'single', singleResult: { errors: problems.map((problem) => textProblemError(problem).toJSON()) } },
          };
          return Promise.resolve(response);
        },
      });
    },
  };
}
