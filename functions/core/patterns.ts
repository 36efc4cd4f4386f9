/**
 * EventBridge event patterns, as the EventBridge Pipe's filter uses them on stream records;
 * `matchesPattern` evaluates one as EventBridge would (the tests run the deployed filter on
 * real stream records with it, and the cost harness plays the pipe with it).
 *
 * Matching follows EventBridge (and its open-source engine, aws/event-ruler):
 * - every key of the pattern must match (and); any value in a key's list may match (or);
 * - an array in the event matches when any of its elements does; a nested pattern must match
 *   within one element of an array of objects, never across two;
 * - values are leaves: an object in the event where the pattern expects values counts as absent;
 * - an absent field matches only `{ exists: false }`;
 * - `$or` takes a list of patterns, any of which may match, alongside the other keys.
 */

/** The operators of a numeric filter. */
export type NumericOperator = '=' | '<' | '<=' | '>' | '>=';

/** A string, or a case-insensitive string, for prefix and suffix filters. */
export type StringOperand = string | { 'equals-ignore-case': string };

/** The forms `anything-but` takes. */
export type AnythingBut =
  | string
  | number
  | readonly string[]
  | readonly number[]
  | { prefix: string }
  | { suffix: string }
  | { 'equals-ignore-case': string | readonly string[] }
  | { wildcard: string };

/** A content filter, one entry of a field's value list. */
export type ContentFilter =
  | { prefix: StringOperand }
  | { suffix: StringOperand }
  | { 'anything-but': AnythingBut }
  | {
      numeric:
        | readonly [NumericOperator, number]
        | readonly [NumericOperator, number, NumericOperator, number];
    }
  | { exists: boolean }
  | { 'equals-ignore-case': string }
  | { wildcard: string };

/** One entry of a field's value list: an exact JSON value or a content filter. */
export type PatternValue = string | number | boolean | null | ContentFilter;

/**
 * An event pattern: per field, a nested pattern or the list of values it may take. The key
 * `$or` holds a list of patterns instead, any of which may match.
 */
export type EventPattern = {
  [key: string]: EventPattern | readonly PatternValue[] | readonly EventPattern[];
};

/**
 * True when the event matches the pattern, as EventBridge would decide.
 * @throws Error on a content filter EventBridge does not define (or that this module does not
 *   implement, such as `cidr`), rather than silently never matching.
 */
export function matchesPattern(
  pattern: EventPattern,
  event: unknown,
  options: { maxWork?: number } = {},
): boolean {
  work = 0;
  maxWork = options.maxWork ?? Number.POSITIVE_INFINITY;
  return matchObject(pattern, event);
}

/** Thrown when a match takes more than its `maxWork`: the pattern and the event are too big together. */
export class PatternTooCostlyError extends Error {
  constructor(limit: number) {
    super(`matching took more than ${limit} units of work`);
    this.name = 'PatternTooCostlyError';
  }
}

/**
 * The work of the match under way (matching is synchronous, so one counter serves): one unit a
 * comparison, and one more per 64 characters of a string leaf a content filter reads.
 */
let work = 0;
let maxWork = Number.POSITIVE_INFINITY;

function spend(leaf: Leaf): void {
  work += typeof leaf === 'string' ? 1 + (leaf.length >> 6) : 1;
  if (work > maxWork) throw new PatternTooCostlyError(maxWork);
}

type Leaf = string | number | boolean | null;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Array.isArray narrows to any[]; this keeps the elements unknown.
function isList(value: unknown): value is readonly unknown[] {
  return Array.isArray(value);
}

function isLeaf(value: unknown): value is Leaf {
  return (
    value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
  );
}

function matchObject(pattern: EventPattern, value: unknown): boolean {
  if (isList(value)) {
    // Array-consistent: the whole pattern within one element, as event-ruler's rulesForJSONEvent.
    return value.some((element) => matchObject(pattern, element));
  }
  const fields = isRecord(value) ? value : {};
  return Object.entries(pattern).every(([key, expected]: [string, unknown]) => {
    if (key === '$or' && isList(expected) && expected.every(isRecord)) {
      return expected.some((alternative) => matchObject(toPattern(alternative), value));
    }
    const actual = Object.hasOwn(fields, key) ? fields[key] : undefined;
    if (isList(expected)) return matchValues(expected, leavesOf(actual));
    if (isRecord(expected)) return matchObject(toPattern(expected), actual);
    throw new Error(`pattern field ${key} must be a list of values or a nested pattern`);
  });
}

// Patterns may come from JSON; the runtime checks in matchObject and matchValue do the narrowing
// that this cast promises.
function toPattern(value: Record<string, unknown>): EventPattern {
  return value as EventPattern;
}

/** The leaf values at a field: arrays are flattened, objects (intermediate nodes) are skipped. */
function leavesOf(value: unknown): Leaf[] {
  if (isList(value)) return value.flatMap(leavesOf);
  return isLeaf(value) ? [value] : [];
}

function matchValues(expected: readonly unknown[], leaves: readonly Leaf[]): boolean {
  return expected.some((filter) => {
    if (isRecord(filter) && Object.hasOwn(filter, 'exists')) {
      if (typeof filter.exists !== 'boolean') throw new Error('exists takes true or false');
      return filter.exists === leaves.length > 0;
    }
    return leaves.some((leaf) => matchValue(filter, leaf));
  });
}

function matchValue(filter: unknown, leaf: Leaf): boolean {
  spend(leaf);
  if (isLeaf(filter)) return filter === leaf;
  const [operator, operand] = singleOperator(filter);
  switch (operator) {
    case 'prefix':
      return typeof leaf === 'string' && affix(operand, leaf, (text, part) => text.startsWith(part));
    case 'suffix':
      return typeof leaf === 'string' && affix(operand, leaf, (text, part) => text.endsWith(part));
    case 'equals-ignore-case':
      return typeof leaf === 'string' && lower(leaf) === lower(requireString(operand, operator));
    case 'wildcard':
      return typeof leaf === 'string' && wildcardMatches(requireString(operand, operator), leaf);
    case 'numeric':
      return typeof leaf === 'number' && numeric(operand, leaf);
    case 'anything-but':
      return anythingBut(operand, leaf);
    default:
      throw new Error(`unsupported content filter ${operator}`);
  }
}

function singleOperator(filter: unknown): [string, unknown] {
  const entries = isRecord(filter) ? Object.entries(filter) : [];
  const [entry] = entries;
  if (entries.length !== 1 || entry === undefined) {
    throw new Error(`a content filter is an object with one operator, got ${JSON.stringify(filter)}`);
  }
  return entry;
}

function requireString(operand: unknown, operator: string): string {
  if (typeof operand !== 'string') throw new Error(`${operator} takes a string`);
  return operand;
}

function lower(text: string): string {
  return text.toLocaleLowerCase('en-US');
}

function affix(operand: unknown, leaf: string, test: (text: string, part: string) => boolean): boolean {
  if (typeof operand === 'string') return test(leaf, operand);
  if (isRecord(operand) && typeof operand['equals-ignore-case'] === 'string') {
    return test(lower(leaf), lower(operand['equals-ignore-case']));
  }
  throw new Error('prefix and suffix take a string or { "equals-ignore-case": string }');
}

/** A wildcard's pieces: literal text, or `*` (any run of characters). */
type GlobPiece = { literal: string } | 'star';

/** `*` matches any run of characters; `\*` is a literal asterisk and `\\` a backslash. */
const globs = new Map<string, GlobPiece[]>();

/** A wildcard's pieces, made once per pattern (a pattern is compared with many leaves). */
function globPieces(pattern: string): GlobPiece[] {
  const known = globs.get(pattern);
  if (known !== undefined) return known;
  const pieces = parseGlob(pattern);
  if (globs.size >= 1000) globs.clear();
  globs.set(pattern, pieces);
  return pieces;
}

/** A wildcard's pieces; throws when a `\\` escapes anything but `*` or `\\`. */
export function parseGlob(pattern: string): GlobPiece[] {
  const pieces: GlobPiece[] = [];
  let literal = '';
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern.charAt(i);
    if (char === '\\') {
      const next = pattern.charAt(i + 1);
      if (next !== '*' && next !== '\\') throw new Error('in a wildcard, \\ may only escape * or \\');
      literal += next;
      i++;
    } else if (char === '*') {
      if (literal !== '') pieces.push({ literal });
      literal = '';
      if (pieces.at(-1) !== 'star') pieces.push('star');
    } else {
      literal += char;
    }
  }
  if (literal !== '') pieces.push({ literal });
  return pieces;
}

/**
 * Whether `text` matches the wildcard, without a regular expression: each literal run is found
 * at its earliest place after the one before (the first anchored at the start, the last at the
 * end), which is enough for `*` alone, so the time is linear in the text and the pattern
 * (a regular expression of several `.*` can take time polynomial in the text).
 */
function wildcardMatches(pattern: string, text: string): boolean {
  const pieces = globPieces(pattern);
  let at = 0;
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i];
    if (piece === undefined || piece === 'star') continue;
    const first = i === 0;
    const last = i === pieces.length - 1;
    if (first && last) return text === piece.literal;
    if (first) {
      if (!text.startsWith(piece.literal)) return false;
      at = piece.literal.length;
    } else if (last) {
      return text.length - piece.literal.length >= at && text.endsWith(piece.literal);
    } else {
      const found = text.indexOf(piece.literal, at);
      if (found < 0) return false;
      at = found + piece.literal.length;
    }
  }
  // Ends with a star (or is only stars, or empty).
  return pieces.length === 0 ? text === '' : true;
}

const COMPARE: Readonly<Record<string, (a: number, b: number) => boolean>> = {
  '=': (a, b) => a === b,
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
};

function numeric(operand: unknown, leaf: number): boolean {
  if (!isList(operand) || operand.length === 0 || operand.length % 2 !== 0) {
    throw new Error('numeric takes operator and number pairs, like [">", 0, "<=", 5]');
  }
  for (let i = 0; i < operand.length; i += 2) {
    const operator = operand[i];
    const bound = operand[i + 1];
    const compare =
      typeof operator === 'string' && Object.hasOwn(COMPARE, operator) ? COMPARE[operator] : undefined;
    if (compare === undefined || typeof bound !== 'number') {
      throw new Error(`numeric has a bad pair: ${JSON.stringify(operator)}, ${JSON.stringify(bound)}`);
    }
    if (!compare(leaf, bound)) return false;
  }
  return true;
}

/**
 * Values and lists exclude exactly those values, so any other leaf (null, booleans, numbers
 * against a string list) matches; the string forms, like prefix itself, only ever match strings.
 */
function anythingBut(operand: unknown, leaf: Leaf): boolean {
  if (typeof operand === 'string' || typeof operand === 'number') return leaf !== operand;
  if (isList(operand)) return !operand.includes(leaf);
  const [operator, inner] = singleOperator(operand);
  if (typeof leaf !== 'string') return false;
  switch (operator) {
    case 'equals-ignore-case': {
      const excluded = isList(inner) ? inner : [requireString(inner, operator)];
      return !excluded.some((value) => typeof value === 'string' && lower(value) === lower(leaf));
    }
    case 'prefix':
    case 'suffix':
    case 'wildcard':
      return !matchValue({ [operator]: inner }, leaf);
    default:
      throw new Error(`anything-but does not take ${operator}`);
  }
}
