/** Paging helpers the store adapters share. */
import type { Page } from '../core/model.ts';
import type { ListQuery } from '../core/ports.ts';

/**
 * The page of a list read with one row more than `query.limit`: that extra row only tells
 * whether another page exists, so `next` (the last item's id) is null on the last page.
 */
export function pageOfLookahead<R, T extends { id: string }>(
  rows: readonly R[],
  query: ListQuery,
  toItem: (row: R) => T,
): Page<T> {
  const items = rows.slice(0, query.limit).map(toItem);
  return { items, next: rows.length > query.limit ? (items.at(-1)?.id ?? null) : null };
}
