// The API explorer the gateway serves to browsers at /graphql (README, "The API explorer"): GraphiQL, bundled
// by `npm run build:explorer` (esbuild) into dist/explorer/, so the page loads nothing from elsewhere.
// The token field sets the Authorization header of every request; the schema shown is the caller's own view.
import { GraphiQL } from 'graphiql';
import React, { useState } from 'react';
import { createRoot } from 'react-dom/client';
import 'graphiql/graphiql.css';

const STORAGE_KEY = 'phi-graph-explorer-token';

function fetcherFor(token) {
  return async (params) => {
    const response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
      body: JSON.stringify(params),
    });
    return response.json();
  };
}

function Explorer() {
  const [token, setToken] = useState(() => sessionStorage.getItem(STORAGE_KEY) ?? '');
  const [draft, setDraft] = useState(token);
  const initialQuery = new URLSearchParams(window.location.search).get('query') ?? undefined;
  const apply = (event) => {
    event.preventDefault();
    sessionStorage.setItem(STORAGE_KEY, draft.trim());
    setToken(draft.trim());
  };
  return React.createElement(
    'div',
    { style: { display: 'flex', flexDirection: 'column', height: '100vh' } },
    React.createElement(
      'form',
      { onSubmit: apply, style: { display: 'flex', gap: '8px', padding: '8px', fontFamily: 'sans-serif', alignItems: 'center' } },
      React.createElement('label', { htmlFor: 'token' }, 'Bearer token'),
      React.createElement('input', { id: 'token', type: 'password', value: draft, onChange: (event) => setDraft(event.target.value), style: { flex: 1 }, autoComplete: 'off' }),
      React.createElement('button', { id: 'use-token', type: 'submit' }, 'Use token'),
    ),
    React.createElement(
      'div',
      { style: { flex: 1, minHeight: 0 } },
      // Keyed by the token: a new token loads that caller's schema view.
      React.createElement(GraphiQL, { key: token, fetcher: fetcherFor(token), defaultQuery: initialQuery, query: initialQuery, shouldPersistHeaders: false }),
    ),
  );
}

createRoot(document.getElementById('root')).render(React.createElement(Explorer));
