import {
  getNamedType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  type GraphQLField,
  type GraphQLObjectType,
  type GraphQLSchema,
  type GraphQLType,
} from 'graphql';

/**
 * Builds an operation that selects every field reachable from a type, as
 * deep as the schema goes without revisiting a type already on the path,
 * so a test can read "everything" and compare it field by field.
 */
export interface SelectedField {
  name: string;
  type: GraphQLType;
  /** The object type's own selection, for object fields. */
  children: SelectedField[] | null;
}

const NESTED_PAGE_ARGUMENT = '(first: 2)';

export function selectEverything(schema: GraphQLSchema, typeName: string, path: readonly string[] = []): SelectedField[] {
  const type = schema.getType(typeName) as GraphQLObjectType;
  const selected: SelectedField[] = [];
  for (const field of Object.values(type.getFields())) {
    const named = getNamedType(field.type);
    if (isLeafType(named)) {
      selected.push({ name: field.name, type: field.type, children: null });
    } else if (isObjectType(named) && !path.includes(named.name) && named.name !== typeName) {
      selected.push({ name: field.name, type: field.type, children: selectEverything(schema, named.name, [...path, typeName]) });
    }
  }
  return selected;
}

function argumentsOf(field: GraphQLField<unknown, unknown> | undefined): string {
  return field?.args.some((argument) => argument.name === 'first') ? NESTED_PAGE_ARGUMENT : '';
}

export function printSelection(schema: GraphQLSchema, typeName: string, fields: SelectedField[]): string {
  const type = schema.getType(typeName) as GraphQLObjectType;
  return fields
    .map((field) => {
      const definition = type.getFields()[field.name];
      if (!field.children) return field.name;
      const child = getNamedType(field.type).name;
      return `${field.name}${argumentsOf(definition)} { ${printSelection(schema, child, field.children)} }`;
    })
    .join(' ');
}

export function isList(type: GraphQLType): boolean {
  return isListType(isNonNullType(type) ? type.ofType : type);
}
