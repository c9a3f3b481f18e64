import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { loadApiSchema } from '../gateway/api-schema.js';
import { renderAccessMatrix } from '../policy/index.js';

/** `npm run policy:matrix`: writes docs/access-matrix.md from the policy and the supergraph. */
export const ACCESS_MATRIX_PATH = new URL('../../docs/access-matrix.md', import.meta.url);

await mkdir(new URL('.', ACCESS_MATRIX_PATH), { recursive: true });
await writeFile(ACCESS_MATRIX_PATH, renderAccessMatrix(loadApiSchema()));
console.log(`Wrote ${fileURLToPath(ACCESS_MATRIX_PATH)}`);
