export { openDatabase, type Database, type DatabaseKind, type DatabaseOptions } from './orm.js';
export * as entities from './entities.js';
