/**
 * A subscription's payload filter: an EventBridge event pattern (patterns.ts) over the event's
 * `{type, payload}`. Fan-out delivers an event to the subscription only when its types take it
 * and the filter matches. A filter is checked whole when it is set, so a bad one is refused
 * with the part at fault named, never found wrong while events flow.
 */
import * as z from 'zod';
import { type EventPattern, matchesPattern, parseGlob } from './patterns.ts';

/** The longest filter, as JSON. */
export const MAX_FILTER_BYTES = 4096;
/** How deep a filter's patterns may nest. */
export const MAX_FILTER_DEPTH = 8;
/** Values a filter may list in all (each a comparison fan-out makes per event). */
export const MAX_FILTER_VALUES = 200;
/** The longest string a filter compares with. */
export const MAX_FILTER_STRING = 256;

/** A part of a filter at fault: its path under `filter`, and what is wrong. */
export interface FilterIssue {
  path: (string | number)[];
  message: string;
}

const CONTENT_FILTERS = [
  'prefix',
  'suffix',
  'anything-but',
  'numeric',
  'exists',
  'equals-ignore-case',
  'wildcard',
] as const;
const TOP_LEVEL = ['type', 'payload', '$or'];

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Everything wrong with a filter (none: it is a valid one). */
export function filterIssues(filter: unknown): FilterIssue[] {
  const issues: FilterIssue[] = [];
  let values = 0;
  const issue = (path: (string | number)[], message: string) => issues.push({ path, message });

  const text = (value: unknown, path: (string | number)[], what: string) => {
    if (typeof value !== 'string') issue(path, `${what} takes a string`);
    else if (value.length > MAX_FILTER_STRING) issue(path, `at most ${MAX_FILTER_STRING} characters`);
  };

  const affix = (operand: unknown, path: (string | number)[], name: string) => {
    if (isRecord(operand)) {
      const keys = Object.keys(operand);
      if (keys.length !== 1 || keys[0] !== 'equals-ignore-case')
        issue(path, `${name} takes a string or {"equals-ignore-case": string}`);
      else text(operand['equals-ignore-case'], [...path, 'equals-ignore-case'], 'equals-ignore-case');
    } else text(operand, path, name);
  };

  const wildcard = (operand: unknown, path: (string | number)[]) => {
    text(operand, path, 'wildcard');
    if (typeof operand !== 'string') return;
    // The engine's own reading of a wildcard says what is wrong with one.
    try {
      parseGlob(operand);
    } catch (error) {
      issue(path, error instanceof Error ? error.message : String(error));
    }
  };

  const numeric = (operand: unknown, path: (string | number)[]) => {
    const lower = ['>', '>='];
    const upper = ['<', '<='];
    const finite = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n);
    if (Array.isArray(operand) && operand.length === 2) {
      const [op, n] = operand;
      if (!['=', ...lower, ...upper].includes(String(op)) || typeof op !== 'string')
        issue([...path, 0], 'one of "=", "<", "<=", ">", ">="');
      if (!finite(n)) issue([...path, 1], 'a number');
      return;
    }
    if (Array.isArray(operand) && operand.length === 4) {
      const [op1, n1, op2, n2] = operand;
      if (typeof op1 !== 'string' || !lower.includes(op1))
        issue([...path, 0], 'the lower bound: ">" or ">="');
      if (!finite(n1)) issue([...path, 1], 'a number');
      if (typeof op2 !== 'string' || !upper.includes(op2))
        issue([...path, 2], 'the upper bound: "<" or "<="');
      if (!finite(n2)) issue([...path, 3], 'a number');
      else if (finite(n1) && n1 >= n2) issue([...path, 3], 'above the lower bound');
      return;
    }
    issue(path, 'numeric takes [operator, number] or a range [">", low, "<", high]');
  };

  const anythingBut = (operand: unknown, path: (string | number)[]) => {
    if (typeof operand === 'string') return text(operand, path, 'anything-but');
    if (typeof operand === 'number') return;
    if (Array.isArray(operand)) {
      if (operand.length === 0) return issue(path, 'a list of at least one value');
      values += operand.length;
      const strings = operand.every((v) => typeof v === 'string');
      const numbers = operand.every((v) => typeof v === 'number' && Number.isFinite(v));
      if (!strings && !numbers) return issue(path, 'a list of strings, or of numbers');
      if (strings) for (const [i, v] of operand.entries()) text(v, [...path, i], 'anything-but');
      return;
    }
    if (isRecord(operand)) {
      const keys = Object.keys(operand);
      const [key] = keys;
      if (keys.length !== 1 || key === undefined)
        return issue(path, 'a value, a list, or one of prefix, suffix, equals-ignore-case, wildcard');
      const inner = operand[key];
      if (key === 'prefix' || key === 'suffix') return text(inner, [...path, key], key);
      if (key === 'wildcard') return wildcard(inner, [...path, key]);
      if (key === 'equals-ignore-case') {
        if (Array.isArray(inner)) {
          if (inner.length === 0) return issue([...path, key], 'a list of at least one string');
          values += inner.length;
          for (const [i, v] of inner.entries()) text(v, [...path, key, i], key);
          return;
        }
        return text(inner, [...path, key], key);
      }
      return issue([...path, key], `anything-but does not take ${key}`);
    }
    issue(path, 'a value, a list, or one of prefix, suffix, equals-ignore-case, wildcard');
  };

  const value = (entry: unknown, path: (string | number)[]) => {
    values++;
    if (entry === null || typeof entry === 'boolean') return;
    if (typeof entry === 'number') {
      if (!Number.isFinite(entry)) issue(path, 'a finite number');
      return;
    }
    if (typeof entry === 'string') return text(entry, path, 'a value');
    if (!isRecord(entry)) return issue(path, 'a value (string, number, boolean, null) or a content filter');
    const keys = Object.keys(entry);
    const [name] = keys;
    if (keys.length !== 1 || name === undefined)
      return issue(path, `a content filter has one operator (${CONTENT_FILTERS.join(', ')})`);
    const operand = entry[name];
    const at = [...path, name];
    switch (name) {
      case 'prefix':
      case 'suffix':
        return affix(operand, at, name);
      case 'equals-ignore-case':
        return text(operand, at, name);
      case 'wildcard':
        return wildcard(operand, at);
      case 'exists':
        if (typeof operand !== 'boolean') issue(at, 'exists takes true or false');
        return;
      case 'numeric':
        return numeric(operand, at);
      case 'anything-but':
        return anythingBut(operand, at);
      default:
        return issue(path, `unknown content filter "${name}" (${CONTENT_FILTERS.join(', ')})`);
    }
  };

  const pattern = (node: unknown, path: (string | number)[], depth: number, top: boolean) => {
    if (!isRecord(node)) return issue(path, 'a pattern: an object of fields');
    const entries = Object.entries(node);
    if (entries.length === 0) return issue(path, 'a pattern names at least one field');
    if (depth > MAX_FILTER_DEPTH) return issue(path, `patterns nest at most ${MAX_FILTER_DEPTH} deep`);
    for (const [key, child] of entries) {
      const at = [...path, key];
      if (top && !TOP_LEVEL.includes(key)) {
        issue(at, 'a filter matches the event\'s "type" and "payload" (or "$or" of such patterns)');
        continue;
      }
      if (key === '$or') {
        if (!Array.isArray(child) || child.length < 2) {
          issue(at, '$or takes a list of at least two patterns');
          continue;
        }
        for (const [i, alternative] of child.entries()) pattern(alternative, [...at, i], depth + 1, top);
      } else if (Array.isArray(child)) {
        if (child.length === 0) issue(at, 'a list of at least one value');
        for (const [i, entry] of child.entries()) value(entry, [...at, i]);
      } else if (isRecord(child)) {
        pattern(child, at, depth + 1, false);
      } else {
        issue(at, 'a list of values, or a nested pattern');
      }
    }
  };

  if (!isRecord(filter)) return [{ path: [], message: 'a pattern: an object of fields' }];
  if (new TextEncoder().encode(JSON.stringify(filter)).length > MAX_FILTER_BYTES)
    return [{ path: [], message: `at most ${MAX_FILTER_BYTES} bytes as JSON` }];
  pattern(filter, [], 1, true);
  if (values > MAX_FILTER_VALUES) issue([], `at most ${MAX_FILTER_VALUES} values in all`);
  return issues;
}

/** A payload filter, checked whole (filterIssues): zod names each part at fault under its field. */
export const EventFilter = z
  .record(z.string(), z.unknown())
  .superRefine((value, ctx) => {
    for (const { path, message } of filterIssues(value)) ctx.addIssue({ code: 'custom', message, path });
  })
  .meta({
    id: 'EventFilter',
    description:
      "An EventBridge event pattern over the event's `type` and `payload`: exact values, `prefix`, `suffix`, `anything-but`, `numeric`, `exists`, `equals-ignore-case`, `wildcard`, and `$or`. Only events it matches are delivered.",
  });
export type EventFilter = z.infer<typeof EventFilter>;

/**
 * The most work one filter may take on one event (patterns.ts counts it: a comparison, and a
 * unit per 64 characters a content filter reads): a filter of 200 wildcards against a payload
 * of many long strings would otherwise take a second per event, in fan-out, for every partner.
 */
export const MAX_FILTER_WORK = 50_000;

/**
 * Whether the event passes the subscription's filter (none passes every event). A filter that
 * would take more than MAX_FILTER_WORK on this event, or that the engine cannot evaluate (one
 * stored before a rule it breaks), does not match it: it never holds up fan-out of the others.
 */
export function filterTakes(
  filter: Record<string, unknown> | undefined,
  event: { type: string; payload: unknown },
): boolean {
  if (filter === undefined) return true;
  try {
    // Checked whole when it was set (EventFilter): it is a pattern.
    return matchesPattern(
      filter as EventPattern,
      { type: event.type, payload: event.payload },
      { maxWork: MAX_FILTER_WORK },
    );
  } catch {
    return false;
  }
}
