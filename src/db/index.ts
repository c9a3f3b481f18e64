export { openDatabase, type Database, type DatabaseKind, type DatabaseOptions } from './orm.js';
