import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Express, Request, Response } from 'express';

/**
 * The API explorer: GraphiQL, bundled at build time (`npm run build:explorer`,
 * part of `npm run build`) into dist/explorer/, served to browsers that GET
 * /graphql, outside production or with EXPLORER=on. The page loads nothing
 * but its own two files (its Content-Security-Policy says so to the browser
 * too); the token is typed into the page and sent as the Authorization
 * header of its requests, so it sees the caller's own schema view.
 */
const FOLDER = fileURLToPath(new URL('../../dist/explorer/', import.meta.url));
const FILES: Record<string, string> = { 'explorer.js': 'text/javascript; charset=utf-8', 'explorer.css': 'text/css; charset=utf-8' };
const POLICY = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>phi-graph API explorer</title>
<link rel="stylesheet" href="/explorer/explorer.css">
</head>
<body style="margin:0">
<div id="root"></div>
<script src="/explorer/explorer.js"></script>
</body>
</html>
`;

function wantsPage(request: Request): boolean {
  return request.accepts(['application/json', 'application/graphql-response+json', 'text/html']) === 'text/html';
}

export function explorerRoutes(app: Express): void {
  app.get('/graphql', (request: Request, response: Response, next) => {
    if (!wantsPage(request)) {
      next();
      return;
    }
    if (!existsSync(`${FOLDER}explorer.js`)) {
      response.status(503).type('text/plain').send('The explorer is not built: run npm run build:explorer (npm run build does it).\n');
      return;
    }
    response.setHeader('content-security-policy', POLICY);
    response.setHeader('x-content-type-options', 'nosniff');
    response.setHeader('referrer-policy', 'no-referrer');
    response.type('text/html; charset=utf-8').send(PAGE);
  });
  app.get('/explorer/:file', (request: Request, response: Response) => {
    const file = String(request.params['file']);
    const type = FILES[file];
    if (!type || !existsSync(`${FOLDER}${file}`)) {
      response.status(404).end();
      return;
    }
    response.setHeader('x-content-type-options', 'nosniff');
    response.type(type).sendFile(`${FOLDER}${file}`);
  });
}
