import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * docs/hipaa-security-rule.md cites tests as proof: `test/file.test.ts` ›
 * "words of its name". A map that cites a test that is gone (renamed,
 * deleted) proves nothing: this fails then.
 */

const MAP = new URL('../docs/hipaa-security-rule.md', import.meta.url);
const CITATION = /`(test\/[\w.-]+\.test\.ts)` › "([^"]+)"/g;

describe('the HIPAA Security Rule map', () => {
  const text = readFileSync(MAP, 'utf8');
  const citations = [...text.matchAll(CITATION)].map(([, file = '', words = '']) => ({ file, words }));

  it('covers every technical safeguard of §164.312 and cites tests for them', () => {
    for (const section of ['§164.312(a)(1)', '§164.312(b)', '§164.312(c)(1)', '§164.312(d)', '§164.312(e)(1)', '§164.308']) expect(text).toContain(section);
    expect(citations.length).toBeGreaterThan(30);
  });

  it('cites only test files that exist and test names they still hold', () => {
    const missing = citations.filter(({ file, words }) => {
      const path = new URL(`../${file}`, import.meta.url);
      return !existsSync(path) || !readFileSync(path, 'utf8').includes(words);
    });
    expect(missing).toEqual([]);
  });
});
