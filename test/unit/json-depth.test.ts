import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../../functions/api/json-depth.ts';

describe('nestsDeeperThan', () => {
  it('counts objects and arrays inside one another, the outermost as 1', () => {
    expect(nestsDeeperThan('{}', 1)).toBe(false);
    expect(nestsDeeperThan('{"a":[1]}', 1)).toBe(true);
    expect(nestsDeeperThan('{"a":[1],"b":{"c":2}}', 2)).toBe(false);
    expect(nestsDeeperThan('1', 0)).toBe(false);
  });

  it('skips brackets inside strings, escaped quotes included', () => {
    expect(nestsDeeperThan('{"a":"[[[{{{"}', 1)).toBe(false);
    expect(nestsDeeperThan('{"a":"\\\\"}', 1)).toBe(false);
    expect(nestsDeeperThan('{"a":"\\"[[[","b":[]}', 2)).toBe(false);
    expect(nestsDeeperThan('{"a":"\\"[[[","b":[[]]}', 2)).toBe(true);
  });

  it('reads a text nested far deeper than any stack, in one loop', () => {
    const levels = 1_000_000;
    expect(nestsDeeperThan(`${'['.repeat(levels)}${']'.repeat(levels)}`, MAX_JSON_DEPTH)).toBe(true);
  });
});
