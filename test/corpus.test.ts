/**
 * The real-model corpus: every file loads with no shape hints and its outputs match
 * onnxruntime-node's at two input shapes, within the form's tolerance (corpus/corpus.ts,
 * TOLERANCE). Entries in known-failures.json must still fail (so a fix is noticed and the list
 * kept honest); at least 95% of the corpus must pass.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { check, entries, knownFailures, type Outcome } from './corpus/corpus';
import { ort, ROOT } from './helpers';

const all = entries();
const known = knownFailures();
const outcomes: Outcome[] = [];

describe('real-model corpus against onnxruntime-node', () => {
  for (const entry of all) {
    const reason = known[entry.id];
    it(`${entry.id}${reason ? ' (known failure)' : ''}`, async () => {
      const outcome = await check(entry, ort);
      outcomes.push(outcome);
      if (reason) {
        expect(outcome.matches, `${entry.id} now passes: take it off known-failures.json`).toBe(false);
      } else {
        expect(outcome.error ?? '').toBe('');
        expect(outcome.matches).toBe(true);
      }
    });
  }

  it('passes on at least 95% of the corpus, and every known failure has a reason', () => {
    for (const [id, reason] of Object.entries(known)) {
      expect(all.some((e) => e.id === id), `known-failures.json names ${id}, which the manifest lacks`).toBe(true);
      expect(reason.length).toBeGreaterThan(10);
    }
    const passed = outcomes.filter((o) => o.matches).length;
    mkdirSync(join(ROOT, '.cache'), { recursive: true });
    writeFileSync(join(ROOT, '.cache', 'corpus-outcomes.json'), JSON.stringify(outcomes, null, 1));
    expect(outcomes.length).toBe(all.length);
    expect(passed / all.length).toBeGreaterThanOrEqual(0.95);
  });
});
