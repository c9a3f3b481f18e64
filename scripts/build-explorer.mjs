// Bundles explorer/main.js (GraphiQL) into dist/explorer/ with esbuild: `npm run build:explorer`, part of `npm run build`.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
await build({
  entryPoints: [`${root}explorer/main.js`],
  bundle: true,
  minify: true,
  outdir: `${root}dist/explorer`,
  entryNames: 'explorer',
  loader: { '.woff2': 'dataurl', '.woff': 'dataurl', '.ttf': 'dataurl', '.svg': 'dataurl', '.png': 'dataurl' },
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
});
console.log(`explorer bundled into ${root}dist/explorer/`);
