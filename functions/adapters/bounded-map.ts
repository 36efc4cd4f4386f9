/**
 * Sets `key` in a map that keeps at most `limit` entries: past it, the entry set longest ago
 * goes (a Map iterates in insertion order). For the caches of opened secrets and data keys.
 */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, limit: number): void {
  map.set(key, value);
  if (map.size > limit) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
}
