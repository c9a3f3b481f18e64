import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { SUPERGRAPH_PATH, composeSupergraph } from './compose.js';

const supergraph = await composeSupergraph();
await writeFile(SUPERGRAPH_PATH, supergraph);
console.log(`Wrote ${fileURLToPath(SUPERGRAPH_PATH)}`);
