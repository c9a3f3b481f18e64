import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * The API explorer in a real browser (Debian's Chromium, driven by
 * playwright-core): the page loads with no request anywhere but the
 * gateway, a token is entered, a query runs, and a denied field shows its
 * FORBIDDEN error. CI installs Chromium and requires the test
 * (REQUIRE_BROWSER=1); elsewhere it is skipped only when no browser starts.
 */
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const required = process.env['REQUIRE_BROWSER'] === '1';
let browser: Browser | null = null;
let why = '';
let stack: TestStack;

beforeAll(async () => {
  execFileSync(process.execPath, ['scripts/build-explorer.mjs'], { stdio: 'ignore' });
  try {
    if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  } catch (error) {
    why = (error as Error).message.split('\n')[0] ?? 'the browser did not start';
    if (required) throw new Error(`REQUIRE_BROWSER=1 but ${why}`);
    // eslint-disable-next-line no-console -- say why a whole feature's test did not run
    console.warn(`Explorer browser test skipped: ${why}`);
    return;
  }
  stack = await startTestStack({ patients: 8 });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

describe('the API explorer', () => {
  it('loads only from the gateway, takes a token, runs a query and shows a denied field as FORBIDDEN', async (context) => {
    if (!browser) context.skip();
    const page = await browser!.newPage();
    const origin = new URL(stack.gatewayUrl).origin;
    const elsewhere: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(origin) && !request.url().startsWith('data:')) elsewhere.push(request.url());
    });
    const query = '{ patients(first: 2) { edges { node { id name { text } ssn } } } }';
    await page.goto(`${stack.gatewayUrl}?query=${encodeURIComponent(query)}`);
    await page.waitForSelector('.graphiql-container', { timeout: 30_000 });
    await page.fill('#token', await stack.token('partner'));
    await page.click('#use-token');
    await page.waitForSelector('.graphiql-execute-button', { timeout: 30_000 });
    await page.click('.graphiql-execute-button');
    await page.locator('.graphiql-response', { hasText: 'FORBIDDEN' }).waitFor({ timeout: 30_000 });
    const shown = (await page.textContent('.graphiql-response')) ?? '';
    expect(shown).toContain('"code": "FORBIDDEN"');
    expect(shown).toContain('Patient.ssn');
    expect(elsewhere).toEqual([]);
    await page.close();
  }, 120_000);

  it('is not served in place of the API to a client that asks for JSON, nor without a token', async (context) => {
    if (!browser) context.skip();
    const json = await fetch(stack.gatewayUrl, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(401);
    const page = await fetch(stack.gatewayUrl, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await page.text()).not.toMatch(/https?:\/\//);
  });
});
