/** Consumers in the local runtime's database: a row each, keyed by partner and name. */
import { type Consumer, type ConsumerPosition, EventType, type Page } from '../../core/model.ts';
import type { ConsumerSaved, ConsumerStore, ListQuery } from '../../core/ports.ts';
import { pageOfLookahead } from '../paging.ts';
import { prepared, type Row, readOptionalText, readText, type SqliteDatabase, write } from './database.ts';

const COLUMNS = 'partner_id, name, types, position_id, position_at, created_at, updated_at';

function toConsumer(row: Row): Consumer {
  const positionId = readOptionalText(row, 'position_id');
  const positionAt = readOptionalText(row, 'position_at');
  return {
    partnerId: readText(row, 'partner_id'),
    name: readText(row, 'name'),
    types: EventType.array().parse(JSON.parse(readText(row, 'types'))),
    ...(positionId === undefined || positionAt === undefined
      ? {}
      : { position: { eventId: positionId, createdAt: positionAt } }),
    createdAt: readText(row, 'created_at'),
    updatedAt: readText(row, 'updated_at'),
  };
}

export class SqliteConsumerStore implements ConsumerStore {
  readonly #db: SqliteDatabase;

  constructor(db: SqliteDatabase) {
    this.#db = db;
  }

  /** The count and the insert share the write lock, so the cap holds under concurrent saves. */
  async save(
    consumer: Consumer,
    options: { maxPerPartner: number; keepPosition?: boolean },
  ): Promise<ConsumerSaved> {
    const db = this.#db;
    return write(db, (): ConsumerSaved => {
      const exists =
        prepared(db, 'SELECT 1 AS found FROM consumers WHERE partner_id = ? AND name = ?').get(
          consumer.partnerId,
          consumer.name,
        ) !== undefined;
      if (!exists) {
        const row = prepared(db, 'SELECT count(*) AS n FROM consumers WHERE partner_id = ?').get(
          consumer.partnerId,
        );
        if (Number(row?.n ?? 0) >= options.maxPerPartner) return 'limit';
      }
      prepared(
        db,
        `INSERT INTO consumers (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (partner_id, name) DO UPDATE SET types = excluded.types,
             position_id = CASE WHEN ? THEN position_id ELSE excluded.position_id END,
             position_at = CASE WHEN ? THEN position_at ELSE excluded.position_at END,
             updated_at = excluded.updated_at`,
      ).run(
        consumer.partnerId,
        consumer.name,
        JSON.stringify(consumer.types),
        consumer.position?.eventId ?? null,
        consumer.position?.createdAt ?? null,
        consumer.createdAt,
        consumer.updatedAt,
        options.keepPosition === true ? 1 : 0,
        options.keepPosition === true ? 1 : 0,
      );
      return exists ? 'replaced' : 'created';
    });
  }

  async get(partnerId: string, name: string): Promise<Consumer | undefined> {
    const row = prepared(this.#db, `SELECT ${COLUMNS} FROM consumers WHERE partner_id = ? AND name = ?`).get(
      partnerId,
      name,
    );
    return row === undefined ? undefined : toConsumer(row);
  }

  async list(partnerId: string, query: ListQuery): Promise<Page<Consumer>> {
    const rows = prepared(
      this.#db,
      `SELECT ${COLUMNS} FROM consumers WHERE partner_id = ? AND name > ? ORDER BY name LIMIT ?`,
    ).all(partnerId, query.after ?? '', query.limit + 1);
    const page = pageOfLookahead(rows, query, (row) => {
      const consumer = toConsumer(row);
      return { ...consumer, id: consumer.name };
    });
    return { items: page.items.map(({ id: _id, ...consumer }) => consumer), next: page.next };
  }

  async commit(partnerId: string, name: string, position: ConsumerPosition, at: string): Promise<boolean> {
    const db = this.#db;
    return write(db, () => {
      const result = prepared(
        db,
        'UPDATE consumers SET position_id = ?, position_at = ?, updated_at = ? WHERE partner_id = ? AND name = ?',
      ).run(position.eventId, position.createdAt, at, partnerId, name);
      return Number(result.changes) > 0;
    });
  }

  async delete(partnerId: string, name: string): Promise<boolean> {
    const db = this.#db;
    return write(db, () => {
      const result = prepared(db, 'DELETE FROM consumers WHERE partner_id = ? AND name = ?').run(
        partnerId,
        name,
      );
      return Number(result.changes) > 0;
    });
  }
}
