/**
 * Freezes the value and everything in it, and returns it: for what a store keeps in memory and
 * hands to every reader, so that no reader can change what the others get.
 */
export function deepFrozen<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFrozen(inner);
    Object.freeze(value);
  }
  return value;
}
