/**
 * How deep a JSON text nests, read as text, before anything parses or walks it: validation,
 * comparison and serialization are recursive, and a value nested thousands deep would
 * overflow their stack. A loop over the characters has no stack to overflow.
 */

/** The deepest a request body may nest: objects and arrays, the body itself counting as 1. */
export const MAX_JSON_DEPTH = 64;

/** Whether `text` opens more than `max` objects or arrays inside one another (strings skipped). */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > max) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return false;
}
